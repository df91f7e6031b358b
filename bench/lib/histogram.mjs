// Fixed log-bucket histogram of non-negative values (the bench records microseconds).
// Values 0..15 get exact buckets; above that every power of two is split into 16 buckets
// (<= 6.25 % relative error). record() does integer arithmetic only and never allocates.

const SUB = 16;
const MAX_EXP = 30; // values are clamped to < 2^31
export const BUCKETS = SUB + (MAX_EXP - 3) * SUB; // 448

/** @param {number} v  non-negative integer < 2^31 */
function indexOf(v) {
  if (v < SUB) return v;
  const e = 31 - Math.clz32(v); // >= 4
  return SUB + (e - 4) * SUB + ((v >>> (e - 4)) & (SUB - 1));
}

/** Lower bound and width of bucket i. @param {number} i */
function bucketRange(i) {
  if (i < SUB) return [i, 1];
  const e = 4 + Math.floor((i - SUB) / SUB);
  const width = 2 ** (e - 4);
  return [(SUB + ((i - SUB) % SUB)) * width, width];
}

export class Histogram {
  constructor() {
    this.counts = new Float64Array(BUCKETS);
    this.n = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = 0;
  }

  /** @param {number} value */
  record(value) {
    const v = value > 0 ? (value < 2147483647 ? Math.round(value) : 2147483647) : 0;
    this.counts[indexOf(v)]++;
    this.n++;
    this.sum += value;
    if (value < this.min) this.min = value;
    if (value > this.max) this.max = value;
  }

  reset() {
    this.counts.fill(0);
    this.n = 0;
    this.sum = 0;
    this.min = Infinity;
    this.max = 0;
  }

  /** @param {Histogram} other */
  merge(other) {
    for (let i = 0; i < BUCKETS; i++) this.counts[i] += other.counts[i];
    this.n += other.n;
    this.sum += other.sum;
    if (other.min < this.min) this.min = other.min;
    if (other.max > this.max) this.max = other.max;
    return this;
  }

  /** Value at quantile q (0..1): middle of the bucket holding it, clamped to [min, max]. @param {number} q */
  quantile(q) {
    if (this.n === 0) return null;
    const rank = Math.max(1, Math.ceil(q * this.n));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) {
        const [low, width] = bucketRange(i);
        const mid = width === 1 ? low : low + width / 2;
        return Math.min(this.max, Math.max(this.min, mid));
      }
    }
    return this.max;
  }

  /** Summary in the given unit (divisor applied to µs), e.g. scale = 1000 for ms. */
  summary(scale = 1000) {
    const r = (/** @type {number|null} */ x) => (x === null ? null : Math.round((x / scale) * 1000) / 1000);
    return {
      n: this.n,
      p50: r(this.quantile(0.5)),
      p99: r(this.quantile(0.99)),
      max: r(this.n ? this.max : null),
      mean: r(this.n ? this.sum / this.n : null),
    };
  }

  /** Compact form for IPC: sparse [index, count, ...]. */
  toJSON() {
    const b = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i]) b.push(i, this.counts[i]);
    return { n: this.n, sum: this.sum, min: this.n ? this.min : null, max: this.max, b };
  }

  /** @param {{n:number,sum:number,min:number|null,max:number,b:number[]}} j */
  static fromJSON(j) {
    const h = new Histogram();
    for (let k = 0; k < j.b.length; k += 2) h.counts[j.b[k]] = j.b[k + 1];
    h.n = j.n;
    h.sum = j.sum;
    h.min = j.min ?? Infinity;
    h.max = j.max;
    return h;
  }
}
