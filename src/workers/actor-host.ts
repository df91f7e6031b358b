/**
 * The piscina entry: each task is one stream actor, alive until the supervisor stops it. Many
 * actors share a thread (concurrentTasksPerWorker) and its undici Agent. An uncaught throw here
 * kills the thread and every actor on it; the supervisor sees the tasks reject and restarts them
 * (docs/DESIGN-FACTS.md, fact 5).
 */
import { Agent } from 'undici';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/umd/node-adapter';
import { StreamActor } from './stream-actor';
import type { ActorTask, ActorApi } from '../shared/messages';

// No connection cap per engine origin (acexy's transport allowed 10 and hung the 11th stream).
const agent = new Agent({ connections: null, keepAliveTimeout: 4000 });

/** A warm-up task loads this module (and undici) on every thread before the first stream needs it. */
export default async function runActor(task: ActorTask | { warmup: true }): Promise<string> {
  if ('warmup' in task) return 'warm';
  const actor = new StreamActor(task, agent);
  const api: ActorApi = { inspect: () => actor.inspect() };
  Comlink.expose(api, nodeEndpoint(task.inspectPort as never));
  await actor.done;
  task.inspectPort.close();
  return task.streamId;
}
