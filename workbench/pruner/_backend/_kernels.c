/* Optional fused CPU kernels for the pruner (module workbench.pruner._backend._kernels).
 *
 * Each function does in one pass over memory what the pure-PyTorch path in the pruner does with
 * several vector ops, and gives the same values (a zero's sign aside; tests/test_kernels.py
 * compares the two). The Python wrapper (kernels.py) checks dtypes, contiguity and sizes and says
 * how many threads to use; here we only take raw addresses, so nothing here validates its input.
 *
 * Threads: every entry point cuts its range into `threads` contiguous shares and runs them on
 * OpenMP threads. Built with -fopenmp, this module links libgomp.so.1, and the process already
 * holds PyTorch's libgomp.so.1 (kernels.py imports torch first), so the shares run on PyTorch's
 * own intra-op threads: nothing competes with them. (Python threads did: PyTorch's idle OpenMP
 * threads spin for a while after every parallel op, and on a 2-core machine a kernel run on a
 * Python thread beside them took ~1.5x as long.) The GIL is released while a kernel runs.
 *
 * Build: setup.py compiles this with -O3 -fopenmp as an optional extension; when no compiler (or
 * no OpenMP) is around, the install still succeeds and the pruner uses its PyTorch path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* One copy of the hot loop per instruction set, chosen when the module loads (GCC on x86-64). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define VECTOR_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define VECTOR_CLONES
#endif

/* torch.minimum/torch.maximum for non-NaN input (NaN is refused below); only the sign of a zero
 * can differ, and comparisons do not see it. */
static inline float lower(float a, float b) { return a < b ? a : b; }
static inline float higher(float a, float b) { return a > b ? a : b; }

/* Start of share t of k contiguous shares of n units (share k starts at n). */
static inline int64_t share(int64_t n, int t, int k) { return (int64_t)((__int128)n * t / k); }

/* For each group of 4 scores: the second lowest, the sum of the two lowest, which scores are at
 * or below the second lowest, and whether the second and third lowest are equal (the groups the
 * caller re-ranks by index). Same network as nm._two_of_four. Returns the number of tied groups,
 * or -1 when a score is NaN (the caller then takes the PyTorch path). */
VECTOR_CLONES
static int64_t two_of_four(const float *x, float *score, float *second, uint8_t *picked,
                           uint8_t *tied, int64_t groups) {
    int64_t ties = 0;
    int nan = 0;
    for (int64_t g = 0; g < groups; ++g) {
        const float x0 = x[4 * g], x1 = x[4 * g + 1], x2 = x[4 * g + 2], x3 = x[4 * g + 3];
        nan |= (x0 != x0) | (x1 != x1) | (x2 != x2) | (x3 != x3);
        const float low_a = lower(x0, x1), low_b = lower(x2, x3);
        const float high_a = higher(x0, x1), high_b = higher(x2, x3);
        const float mid = higher(low_a, low_b), low_high = lower(high_a, high_b);
        const float s = lower(mid, low_high);
        const uint8_t t = mid == low_high;
        ties += t;
        tied[g] = t;
        second[g] = s;
        score[g] = lower(low_a, low_b) + s;
        picked[4 * g] = x0 <= s;
        picked[4 * g + 1] = x1 <= s;
        picked[4 * g + 2] = x2 <= s;
        picked[4 * g + 3] = x3 <= s;
    }
    return nan ? -1 : ties;
}

/* How many of each run of ``row`` scores are at or below ``value``, as floats (row sums of the
 * 0/1 comparison, which is what probes.row_sums computes; the last run may be shorter). */
VECTOR_CLONES
static void count_rows(const float *x, int64_t n, int64_t row, float value, float *counts) {
    for (int64_t start = 0, r = 0; start < n; start += row, ++r) {
        const int64_t end = start + row < n ? start + row : n;
        int32_t count = 0;
        for (int64_t i = start; i < end; ++i) count += x[i] <= value;
        counts[r] = (float)count;
    }
}

/* ``x <= value`` as bools. */
VECTOR_CLONES
static void at_or_below(const float *x, int64_t n, float value, uint8_t *out) {
    for (int64_t i = 0; i < n; ++i) out[i] = x[i] <= value;
}

/* The scores in (low, high] within the given rows of ``row`` scores (rows in increasing order),
 * with their flat positions, in position order; ``capacity`` bounds what is written. Returns how
 * many there are (more than ``capacity`` means the caller's count was wrong). */
VECTOR_CLONES
static int64_t between_rows(const float *x, int64_t n, const int64_t *rows, int64_t nrows, int64_t row,
                            float low, float high, float *values, int64_t *positions, int64_t capacity) {
    int64_t found = 0;
    for (int64_t k = 0; k < nrows; ++k) {
        const int64_t start = rows[k] * row, end = start + row < n ? start + row : n;
        if (k + 4 < nrows) /* rows are scattered: fetch one a few rows ahead */
            for (int64_t off = 0; off < row && rows[k + 4] * row + off < n; off += 16)
                __builtin_prefetch(x + rows[k + 4] * row + off);
        int hits = 0;  /* a vectorised count first: most rows hold one or two of the scores */
        for (int64_t i = start; i < end; ++i) hits += (x[i] > low) & (x[i] <= high);
        for (int64_t i = start; hits > 0; ++i) {
            const float v = x[i];
            if ((v > low) & (v <= high)) {
                if (found < capacity) {
                    values[found] = v;
                    positions[found] = i;
                }
                ++found;
                --hits;
            }
        }
    }
    return found;
}

/* w[i] *= 0 where pruned[i]: what multiplying by the keep mask does (a negative weight becomes
 * -0.0, NaN stays NaN), without building the 0/1 factor. Masks are bool tensors (bytes 0 or 1),
 * so 1 - pruned is the keep factor. Every weight is multiplied, by 1 where kept: written as
 * `pruned ? w * 0 : w` (or with `!pruned`), GCC if-converts the loop into masked stores of the
 * pruned lanes, which ran 3-4x slower on this project's AMD EPYC (2026-12-07, one core, the
 * reference stack's 4x1 and 1x1 masks). */
VECTOR_CLONES
static void zero_pruned(float *w, const uint8_t *pruned, int64_t n) {
    for (int64_t i = 0; i < n; ++i) w[i] *= (float)(1 - pruned[i]);
}

/* The same for Nx1 blocks: row r of the [rows, cols] weight is zeroed where row r / bn of the
 * block mask is set (`first` is the weight row the call starts at). */
VECTOR_CLONES
static void zero_pruned_rows(float *w, const uint8_t *pruned, int64_t first, int64_t rows, int64_t cols, int64_t bn) {
    for (int64_t r = first; r < first + rows; ++r) {
        float *wr = w + r * cols;
        const uint8_t *pr = pruned + (r / bn) * cols;
        for (int64_t c = 0; c < cols; ++c) wr[c] *= (float)(1 - pr[c]);
    }
}

/* s = alpha * s + beta * |w * g|, rounded as the PyTorch path rounds it: the product, then (when
 * beta is not 1) the product times beta, then one fused multiply-add, which is what
 * torch.add(new, s, alpha=alpha) computes on CPU. */
VECTOR_CLONES
static void snip_accumulate(float *s, const float *w, const float *g, int64_t n, float alpha, float beta) {
    if (beta == 1.0f)
        for (int64_t i = 0; i < n; ++i) s[i] = fmaf(s[i], alpha, fabsf(w[i] * g[i]));
    else
        for (int64_t i = 0; i < n; ++i) s[i] = fmaf(s[i], alpha, fabsf(w[i] * g[i]) * beta);
}

/* The same update for scores of Nx1 blocks (`bn` rows of one column; `cols` columns): a block's
 * value is the sum of its |w * g| in row order (_backend.reduce_blocks sums Nx1 blocks that way),
 * divided by bn for "mean", then times beta and accumulated as above. `rows` are block rows.
 * The bn rows are read side by side, 64 columns at a time. Reading each block row front to back
 * with two streams (w and g) into a row of sums in L1 was not faster on one core (2026-12-07,
 * loaded machine), nor was reading 1024 columns at a time (performance.md). */
VECTOR_CLONES
static void snip_accumulate_blocks(float *s, const float *w, const float *g, int64_t rows, int64_t cols,
                                   int64_t bn, int mean, float alpha, float beta) {
    float acc[64];
    for (int64_t r = 0; r < rows; ++r) {
        const float *wr = w + r * bn * cols, *gr = g + r * bn * cols;
        float *sr = s + r * cols;
        for (int64_t c0 = 0; c0 < cols; c0 += 64) {
            const int64_t width = cols - c0 < 64 ? cols - c0 : 64;
            for (int64_t j = 0; j < width; ++j) acc[j] = fabsf(wr[c0 + j] * gr[c0 + j]);
            for (int64_t i = 1; i < bn; ++i)
                for (int64_t j = 0; j < width; ++j) acc[j] += fabsf(wr[i * cols + c0 + j] * gr[i * cols + c0 + j]);
            for (int64_t j = 0; j < width; ++j) {
                float v = mean ? acc[j] / (float)bn : acc[j];
                if (beta != 1.0f)
                    v *= beta;
                sr[c0 + j] = fmaf(sr[c0 + j], alpha, v);
            }
        }
    }
}

/* ---- block scores and block masking on the 2-D view of any weight (see blocks.py) ----
 *
 * The view is [rows, cols], row r at r * cols in the weight; column c at off[c] within the row
 * (off is NULL where the view is the weight itself, as for Linear; for Conv2d it maps the
 * channels-last view [out, kh*kw*in] onto [out, in, kh, kw]). Weights (and gradients) are float32,
 * float16 or bfloat16; scores are float32. */
enum { DT_F32 = 0, DT_F16 = 1, DT_BF16 = 2 };
enum { EL_VALUE = 0, EL_ABS_W = 1, EL_ABS_G = 2, EL_ABS_WG = 3 };
enum { RED_SUM = 0, RED_MEAN = 1, RED_MAX = 2 };

static inline float bits_to_float(uint32_t b) {
    float f;
    memcpy(&f, &b, sizeof f);
    return f;
}

static inline uint32_t float_to_bits(float f) {
    uint32_t b;
    memcpy(&b, &f, sizeof b);
    return b;
}

/* IEEE half to float, exactly (subnormals, infinities and NaN included), without branches so
 * that loops over it vectorise: the exponent is rebiased, infinities and NaN moved to the top
 * exponent, and subnormals scaled by a float subtraction (2^-14 * (1 + m/1024) - 2^-14). */
static inline float f16_to_f32(uint16_t h) {
    const uint32_t o = (uint32_t)(h & 0x7FFFu) << 13, exp = o & 0x0F800000u;
    const uint32_t big = exp == 0x0F800000u ? o + 0x70000000u : o + 0x38000000u;
    const float sub = bits_to_float(o + 0x38800000u) - bits_to_float(0x38800000u);
    const uint32_t magnitude = exp == 0 ? float_to_bits(sub) : big;
    return bits_to_float(magnitude | ((uint32_t)(h & 0x8000u) << 16));
}

static inline float load(const void *p, int dt, int64_t i) {
    if (dt == DT_F32)
        return ((const float *)p)[i];
    if (dt == DT_F16)
        return f16_to_f32(((const uint16_t *)p)[i]);
    return bits_to_float((uint32_t)((const uint16_t *)p)[i] << 16);
}

/* One element's score, computed in float32 from the upcast weight and gradient. */
static inline float element(const void *w, const void *g, int dt, int el, int64_t i) {
    switch (el) {
    case EL_VALUE: return load(w, dt, i);
    case EL_ABS_W: return fabsf(load(w, dt, i));
    case EL_ABS_G: return fabsf(load(g, dt, i));
    default: return fabsf(load(w, dt, i) * load(g, dt, i));
    }
}

enum { OP_STORE = 0, OP_ADD = 1, OP_MAX = 2 };

/* torch.maximum: NaN if either is NaN. */
static inline float max_nan(float acc, float v) { return (acc > v || acc != acc) ? acc : v; }

static inline float combine(float a, float v, int op) {
    return op == OP_STORE ? v : (op == OP_ADD ? a + v : max_nan(a, v));
}

static inline void element_row_of(float *e, const void *w, const void *g, int dt, int el, int op, int64_t base,
                                  const int64_t *off, int64_t n) {
    if (off)
        for (int64_t c = 0; c < n; ++c) e[c] = combine(e[c], element(w, g, dt, el, base + off[c]), op);
    else
        for (int64_t c = 0; c < n; ++c) e[c] = combine(e[c], element(w, g, dt, el, base + c), op);
}

/* e[c] = op(e[c], the element score at base + off[c] (or base + c)), c < n: one loop per dtype,
 * kind and op. */
VECTOR_CLONES
static void element_row(float *e, const void *w, const void *g, int dt, int el, int op, int64_t base,
                        const int64_t *off, int64_t n) {
#define ROW_OP(d, k, o) case ((d) * 4 + (k)) * 3 + (o): element_row_of(e, w, g, d, k, o, base, off, n); return;
#define ROW_CASE(d, k) ROW_OP(d, k, 0) ROW_OP(d, k, 1) ROW_OP(d, k, 2)
    switch ((dt * 4 + el) * 3 + op) {
    ROW_CASE(0, 0) ROW_CASE(0, 1) ROW_CASE(0, 2) ROW_CASE(0, 3)
    ROW_CASE(1, 0) ROW_CASE(1, 1) ROW_CASE(1, 2) ROW_CASE(1, 3)
    ROW_CASE(2, 0) ROW_CASE(2, 1) ROW_CASE(2, 2) ROW_CASE(2, 3)
    default: return;
    }
#undef ROW_CASE
#undef ROW_OP
}

static inline void element_row_conv_of(float *e, const void *w, const void *g, int dt, int el, int64_t base,
                                       int64_t inputs, int64_t kernel) {
    for (int64_t k = 0; k < kernel; ++k)
        for (int64_t i = 0; i < inputs; ++i) e[k * inputs + i] = element(w, g, dt, el, base + i * kernel + k);
}

/* A whole row of a Conv weight's channels-last view (column k * inputs + i at i * kernel + k),
 * with the offsets computed instead of loaded from the table. */
VECTOR_CLONES
static void element_row_conv(float *e, const void *w, const void *g, int dt, int el, int64_t base, int64_t inputs,
                             int64_t kernel) {
#define CONV_CASE(d, k) case (d) * 4 + (k): element_row_conv_of(e, w, g, d, k, base, inputs, kernel); return;
    switch (dt * 4 + el) {
    CONV_CASE(0, 0) CONV_CASE(0, 1) CONV_CASE(0, 2) CONV_CASE(0, 3)
    CONV_CASE(1, 0) CONV_CASE(1, 1) CONV_CASE(1, 2) CONV_CASE(1, 3)
    CONV_CASE(2, 0) CONV_CASE(2, 1) CONV_CASE(2, 2) CONV_CASE(2, 3)
    default: return;
    }
#undef CONV_CASE
}

/* One finished block score: the sum v (divided by count for "mean") stored at dst, or, with
 * accumulate, times beta and added as fmaf(*dst, alpha, x). */
static inline void finish_one(float *dst, float v, int how, float count, int accumulate, float alpha, float beta) {
    float x = how == RED_MEAN ? v / count : v;
    if (!accumulate) {
        *dst = x;
        return;
    }
    if (beta != 1.0f)
        x *= beta;
    *dst = fmaf(*dst, alpha, x);
}

/* Store or accumulate the finished block scores v[0..n) at s[at[cb]] (or s[cb]). */
static void finish(float *s, const float *v, const int64_t *at, int64_t n, int how, float count, int accumulate,
                   float alpha, float beta) {
    for (int64_t cb = 0; cb < n; ++cb) finish_one(s + (at ? at[cb] : cb), v[cb], how, count, accumulate, alpha, beta);
}

/* Column j of every bm-wide block of a row of element scores `e`, in turn, into acc (the first
 * column stored where `first`): each block still combines row by row, left to right. */
static inline void combine_columns(float *acc, const float *e, int64_t width, int64_t bm, int first, int how) {
    for (int64_t j = 0; j < bm; ++j) {
        const float *ej = e + j;
        if (first && j == 0)
            for (int64_t cb = 0; cb < width; ++cb) acc[cb] = ej[cb * bm];
        else if (how == RED_MAX)
            for (int64_t cb = 0; cb < width; ++cb) acc[cb] = max_nan(acc[cb], ej[cb * bm]);
        else
            for (int64_t cb = 0; cb < width; ++cb) acc[cb] += ej[cb * bm];
    }
}

/* finish() for block scores kept in a Conv weight's own order: the score of group j at kernel
 * position k, v[j * K + k], goes to view column k * groups + j. Written in view order, so the
 * scores' row is read and written contiguously and only v is read with a stride. */
static inline void finish_conv(float *s, const float *v, int64_t groups, int64_t K, int how, float count,
                               int accumulate, float alpha, float beta) {
    for (int64_t k = 0; k < K; ++k) {
        float *dst = s + k * groups;
        const float *src = v + k;
        for (int64_t j = 0; j < groups; ++j) finish_one(dst + j, src[j * K], how, count, accumulate, alpha, beta);
    }
}

/* acc[j * K + k] = op(acc[j * K + k], run 0 of group j at k), then combine runs 1 .. bm-1 of the
 * group (runs of K elements, bm runs per group, nj groups): one row's share of each block. */
static inline void combine_runs(float *acc, const float *e, int64_t nj, int64_t bm, int64_t K, int op, int how) {
    for (int64_t j = 0; j < nj; ++j) {
        float *a = acc + j * K;
        const float *run = e + j * bm * K;
        if (op == OP_STORE)
            for (int64_t k = 0; k < K; ++k) a[k] = run[k];
        else if (op == OP_MAX)
            for (int64_t k = 0; k < K; ++k) a[k] = max_nan(a[k], run[k]);
        else
            for (int64_t k = 0; k < K; ++k) a[k] += run[k];
        for (int64_t jj = 1; jj < bm; ++jj) {
            run += K;
            if (how == RED_MAX)
                for (int64_t k = 0; k < K; ++k) a[k] = max_nan(a[k], run[k]);
            else
                for (int64_t k = 0; k < K; ++k) a[k] += run[k];
        }
    }
}

/* NxM blocks (M > 1 dividing the inputs) of whole rows of a Conv weight's channels-last view.
 * Block column k * nj + j holds inputs j*bm .. j*bm+bm-1 at kernel position k, which in a weight
 * row [inputs][K] are bm runs of K contiguous elements, one run per input. Each row's element
 * scores are computed contiguously into `e`; run jj of input group j is then combined into
 * acc[j * K + k] (the block scores in the weight's own order), so every block still combines its
 * elements row by row, left to right, as the reference does, and no element is gathered through
 * the offset table. The finished scores go to their view columns k * nj + j. */
VECTOR_CLONES
static void conv_block_scores(float *s, const void *w, const void *g, int dt, int el, int how, int accumulate,
                              float alpha, float beta, int64_t cols, int64_t inputs, int64_t bn, int64_t bm,
                              int64_t br_lo, int64_t br_hi, float *e, float *acc) {
    const int64_t K = cols / inputs, nj = inputs / bm, ncb = cols / bm;
    const float count = (float)(bn * bm);
    for (int64_t br = br_lo; br < br_hi; ++br) {
        for (int64_t i = 0; i < bn; ++i) {
            element_row(e, w, g, dt, el, OP_STORE, (br * bn + i) * cols, NULL, cols);
            const int op = i == 0 ? OP_STORE : (how == RED_MAX ? OP_MAX : OP_ADD);
            if (K == 9) /* 3x3 kernels: runs of a constant length, unrolled */
                combine_runs(acc, e, nj, bm, 9, op, how);
            else
                combine_runs(acc, e, nj, bm, K, op, how);
        }
        finish_conv(s + br * ncb, acc, nj, K, how, count, accumulate, alpha, beta);
    }
}

/* Scores of the blocks [br_lo, br_hi) x [cb_lo, cb_hi) of bn x bm: each block's element scores
 * combined row by row, left to right (reference.reduce_blocks), the sum divided by bn * bm for
 * "mean"; then stored, or (accumulate) times beta and added as fmaf(s, alpha, v). `acc` holds a
 * tile row of block scores, `e` a tile row of element scores (bm > 1), or `e` holds 8 rows of
 * them where a block is one whole row (1xchannel: 8 rows are summed side by side).
 *
 * Nx1 blocks (bm == 1) do not mix columns, so with an offset table (a Conv weight) they are read
 * in the weight's own order, contiguously, and each score is written to its view column inv[q]. */
VECTOR_CLONES
static void block_scores(float *s, const void *w, const void *g, int dt, int el, int how, int accumulate, float alpha,
                         float beta, int64_t cols, const int64_t *off, const int64_t *inv, int64_t inputs, int64_t bn,
                         int64_t bm, int64_t br_lo, int64_t br_hi, int64_t cb_lo, int64_t cb_hi, float *e, float *acc) {
    const int64_t ncb = cols / bm, width = cb_hi - cb_lo, c0 = cb_lo * bm;
    const float count = (float)(bn * bm);
    const int op = how == RED_MAX ? OP_MAX : OP_ADD;
    if (bn == 1 && width == 1) { /* whole rows: 8 independent running sums instead of one chain */
        for (int64_t r0 = br_lo; r0 < br_hi; r0 += 8) {
            const int64_t k = br_hi - r0 < 8 ? br_hi - r0 : 8;
            for (int64_t r = 0; r < k; ++r)
                element_row(e + r * bm, w, g, dt, el, OP_STORE, (r0 + r) * cols + (off ? 0 : c0),
                            off ? off + c0 : NULL, bm);
            for (int64_t r = 0; r < k; ++r) acc[r] = e[r * bm];
            if (k == 8 && op == OP_ADD) { /* eight independent chains, unrolled */
                float a[8];
                for (int r = 0; r < 8; ++r) a[r] = acc[r];
                for (int64_t j = 1; j < bm; ++j)
                    for (int r = 0; r < 8; ++r) a[r] += e[r * bm + j];
                for (int r = 0; r < 8; ++r) acc[r] = a[r];
            } else
                for (int64_t j = 1; j < bm; ++j)
                    for (int64_t r = 0; r < k; ++r) acc[r] = combine(acc[r], e[r * bm + j], op);
            for (int64_t r = 0; r < k; ++r)
                finish(s + (r0 + r) * ncb + cb_lo, acc + r, NULL, 1, how, count, accumulate, alpha, beta);
        }
        return;
    }
    if (off && inputs > 0 && bm > 1 && inputs % bm == 0 && c0 == 0 && width == ncb) {
        conv_block_scores(s, w, g, dt, el, how, accumulate, alpha, beta, cols, inputs, bn, bm, br_lo, br_hi, e, acc);
        return;
    }
    const int native = bm == 1 && inv != NULL;
    for (int64_t br = br_lo; br < br_hi; ++br) {
        for (int64_t i = 0; i < bn; ++i) {
            const int64_t base = (br * bn + i) * cols;
            if (bm == 1) { /* straight into the block scores */
                if (off && !native)
                    element_row(acc, w, g, dt, el, i == 0 ? OP_STORE : op, base, off + c0, width);
                else
                    element_row(acc, w, g, dt, el, i == 0 ? OP_STORE : op, base + c0, NULL, width);
                continue;
            }
            if (off && inputs > 0 && c0 == 0 && width * bm == cols) /* whole Conv rows: no table */
                element_row_conv(e, w, g, dt, el, base, inputs, cols / inputs);
            else
                element_row(e, w, g, dt, el, OP_STORE, off ? base : base + c0, off ? off + c0 : NULL, width * bm);
            switch (bm) { /* constant block widths: the strided reads become shuffles */
            case 2: combine_columns(acc, e, width, 2, i == 0, how); break;
            case 4: combine_columns(acc, e, width, 4, i == 0, how); break;
            default: combine_columns(acc, e, width, bm, i == 0, how);
            }
        }
        if (native && c0 == 0 && width == ncb && inputs > 0) /* whole rows: no table */
            finish_conv(s + br * ncb, acc, inputs, cols / inputs, how, count, accumulate, alpha, beta);
        else
            finish(s + br * ncb + (native ? 0 : cb_lo), acc, native ? inv + cb_lo : NULL, width, how, count,
                   accumulate, alpha, beta);
    }
}

/* A 16-bit float times zero, as the hardware does it in float32: a signed zero, NaN stays NaN
 * (quietened), infinity becomes the default NaN. */
static inline uint16_t zero16(uint16_t h, uint16_t exp, uint16_t mant, uint16_t quiet, uint16_t dflt) {
    if ((h & exp) != exp)
        return h & 0x8000u;
    return (h & mant) ? (uint16_t)(h | quiet) : dflt;
}

static inline void expand_keep(float *keep, const uint8_t *pr, int64_t ncb, int64_t bm) {
    for (int64_t cb = 0; cb < ncb; ++cb) {
        const float k = pr[cb] ? 0.0f : 1.0f;
        for (int64_t j = 0; j < bm; ++j) keep[cb * bm + j] = k;
    }
}

/* Zero the view's rows [r_lo, r_hi) where their bn x bm block is pruned, as multiplying by the
 * 0/1 keep mask does: `keep` (cols floats) holds the expanded keep row of the current block row,
 * in the weight's own column order, so the mask is read without branches and the multiply runs
 * over contiguous memory. */
VECTOR_CLONES
static void zero_blocks(void *w, int dt, const uint8_t *pruned, int64_t cols, const int64_t *off, int64_t bn,
                        int64_t bm, int64_t r_lo, int64_t r_hi, float *keep, uint8_t *out) {
    const int64_t ncb = cols / bm;
    const int whole_rows = ncb == 1 && dt == DT_F32 && out == NULL; /* 1xchannel: no keep row needed */
    int any = 0; /* whether the current block row prunes anything (else its rows stay as they are) */
    for (int64_t r = r_lo; r < r_hi; ++r) {
        if (r == r_lo || r % bn == 0) {
            const uint8_t *pr = pruned + (r / bn) * ncb;
            any = 0;
            for (int64_t cb = 0; cb < ncb; ++cb) any |= pr[cb];
            if (!any) {
                if (out)
                    memset(out + r * cols, 0, (size_t)cols);
                continue;
            }
            if (whole_rows)
                ;
            else if (off) /* in the weight's own order, so that the multiply below runs contiguously */
                for (int64_t cb = 0; cb < ncb; ++cb)
                    for (int64_t j = 0; j < bm; ++j) keep[off[cb * bm + j]] = pr[cb] ? 0.0f : 1.0f;
            else
            switch (bm) { /* constant block widths unroll */
            case 1: expand_keep(keep, pr, ncb, 1); break;
            case 2: expand_keep(keep, pr, ncb, 2); break;
            case 4: expand_keep(keep, pr, ncb, 4); break;
            default: expand_keep(keep, pr, ncb, bm);
            }
        }
        const int64_t base = r * cols;
        if (!any) {
            if (out)
                memset(out + base, 0, (size_t)cols);
            continue;
        }
        if (whole_rows) {
            float *wr = (float *)w + base;
            for (int64_t c = 0; c < cols; ++c) wr[c] *= 0.0f;
            continue;
        }
        if (out) { /* the pruned mask in the weight's order instead of zeroing */
            for (int64_t c = 0; c < cols; ++c) out[base + c] = keep[c] == 0.0f;
            continue;
        }
        if (dt == DT_F32) {
            float *wr = (float *)w + base;
            for (int64_t c = 0; c < cols; ++c) wr[c] *= keep[c];
            continue;
        }
        uint16_t *wr = (uint16_t *)w + base;
        for (int64_t c = 0; c < cols; ++c)
            if (keep[c] == 0.0f)
                wr[c] = dt == DT_F16 ? zero16(wr[c], 0x7C00u, 0x3FFu, 0x200u, 0xFE00u)
                                     : zero16(wr[c], 0x7F80u, 0x7Fu, 0x40u, 0xFFC0u);
    }
}

/* ---- entry points: parse addresses, cut the work into `threads` shares, release the GIL ---- */

static PyObject *py_two_of_four(PyObject *self, PyObject *args) {
    unsigned long long x, score, second, picked, tied;
    long long groups;
    int threads;
    if (!PyArg_ParseTuple(args, "KKKKKLi", &x, &score, &second, &picked, &tied, &groups, &threads))
        return NULL;
    int64_t ties = 0;
    int nan = 0;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static, 1) reduction(+ : ties) reduction(| : nan)
    for (int t = 0; t < threads; ++t) {
        const int64_t lo = share(groups, t, threads), hi = share(groups, t + 1, threads);
        const int64_t found = two_of_four((const float *)(uintptr_t)x + 4 * lo, (float *)(uintptr_t)score + lo,
                                          (float *)(uintptr_t)second + lo, (uint8_t *)(uintptr_t)picked + 4 * lo,
                                          (uint8_t *)(uintptr_t)tied + lo, hi - lo);
        if (found < 0)
            nan = 1;
        else
            ties += found;
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong(nan ? -1LL : (long long)ties);
}

static PyObject *py_count_rows(PyObject *self, PyObject *args) {
    unsigned long long x, counts;
    long long n, row;
    float value;
    int threads;
    if (!PyArg_ParseTuple(args, "KLLfKi", &x, &n, &row, &value, &counts, &threads))
        return NULL;
    const int64_t rows = (n + row - 1) / row;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        const int64_t lo = share(rows, t, threads) * row, hi = share(rows, t + 1, threads) * row;
        count_rows((const float *)(uintptr_t)x + lo, (hi < n ? hi : n) - lo, row, value,
                   (float *)(uintptr_t)counts + lo / row);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_at_or_below(PyObject *self, PyObject *args) {
    unsigned long long x, out;
    long long n;
    float value;
    int threads;
    if (!PyArg_ParseTuple(args, "KLfKi", &x, &n, &value, &out, &threads))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        const int64_t lo = share(n, t, threads), hi = share(n, t + 1, threads);
        at_or_below((const float *)(uintptr_t)x + lo, hi - lo, value, (uint8_t *)(uintptr_t)out + lo);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* Share t of the listed rows writes at most `capacity` hits to its own slice of `values` and
 * `positions` (t * capacity on) and its count to found[t]; the caller joins the slices. */
static PyObject *py_between_rows(PyObject *self, PyObject *args) {
    unsigned long long x, rows, values, positions, found;
    long long n, nrows, row, capacity;
    float low, high;
    int threads;
    if (!PyArg_ParseTuple(args, "KLKLLffKKLKi", &x, &n, &rows, &nrows, &row, &low, &high, &values, &positions,
                          &capacity, &found, &threads))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        const int64_t lo = share(nrows, t, threads), hi = share(nrows, t + 1, threads);
        ((int64_t *)(uintptr_t)found)[t] = between_rows(
            (const float *)(uintptr_t)x, (int64_t)n, (const int64_t *)(uintptr_t)rows + lo, hi - lo, (int64_t)row,
            low, high, (float *)(uintptr_t)values + t * capacity, (int64_t *)(uintptr_t)positions + t * capacity,
            (int64_t)capacity);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_zero_pruned(PyObject *self, PyObject *args) {
    unsigned long long w, pruned;
    long long n;
    int threads;
    if (!PyArg_ParseTuple(args, "KKLi", &w, &pruned, &n, &threads))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        const int64_t lo = share(n, t, threads), hi = share(n, t + 1, threads);
        zero_pruned((float *)(uintptr_t)w + lo, (const uint8_t *)(uintptr_t)pruned + lo, hi - lo);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_zero_pruned_rows(PyObject *self, PyObject *args) {
    unsigned long long w, pruned;
    long long rows, cols, bn;
    int threads;
    if (!PyArg_ParseTuple(args, "KKLLLi", &w, &pruned, &rows, &cols, &bn, &threads))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        const int64_t lo = share(rows, t, threads), hi = share(rows, t + 1, threads);
        zero_pruned_rows((float *)(uintptr_t)w, (const uint8_t *)(uintptr_t)pruned, lo, hi - lo, (int64_t)cols,
                         (int64_t)bn);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_snip_accumulate(PyObject *self, PyObject *args) {
    unsigned long long s, w, g;
    long long n;
    float alpha, beta;
    int threads;
    if (!PyArg_ParseTuple(args, "KKKLffi", &s, &w, &g, &n, &alpha, &beta, &threads))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        const int64_t lo = share(n, t, threads), hi = share(n, t + 1, threads);
        snip_accumulate((float *)(uintptr_t)s + lo, (const float *)(uintptr_t)w + lo, (const float *)(uintptr_t)g + lo,
                        hi - lo, alpha, beta);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_snip_accumulate_blocks(PyObject *self, PyObject *args) {
    unsigned long long s, w, g;
    long long rows, cols, bn;
    int mean, threads;
    float alpha, beta;
    if (!PyArg_ParseTuple(args, "KKKLLLpffi", &s, &w, &g, &rows, &cols, &bn, &mean, &alpha, &beta, &threads))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; ++t) {
        const int64_t lo = share(rows, t, threads), hi = share(rows, t + 1, threads);
        snip_accumulate_blocks((float *)(uintptr_t)s + lo * cols, (const float *)(uintptr_t)w + lo * bn * cols,
                               (const float *)(uintptr_t)g + lo * bn * cols, hi - lo, (int64_t)cols, (int64_t)bn,
                               mean, alpha, beta);
    }
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

/* ---- one call over many layers ----
 * A job is one layer, described by int64 fields (addresses and sizes). Its rows are cut into
 * tiles of about `tile` weights (whole rows), and the tiles of all jobs are handed to the threads
 * as they come free (schedule(dynamic)): one parallel region per hook instead of one per layer,
 * and a thread that the OS preempts on a busy machine does not hold the others back at a barrier
 * after every layer. What each tile computes does not depend on the tiling.
 *
 * MANY_SNIP: [score, weight, grad, block rows, cols, bn, mean]: snip_accumulate(_blocks); bn == 1
 *            is the element-wise update (such a layer is given as numel rows of 1 column).
 * MANY_ZERO: [weight, pruned, rows, cols, bn]: zero_pruned (bn == 1, numel rows of 1 column) or
 *            zero_pruned_rows.
 * MANY_COUNT: [scores, runs, row, n, counts]: count_rows, tiles of whole runs of `row` scores. */
enum { MANY_SNIP = 0, MANY_ZERO = 1, MANY_COUNT = 2 };
static const struct {
    int fields, rows_at, unit_at, bn_at; /* where a job's rows, row width and block rows are */
} MANY[3] = {{7, 3, 4, 5}, {5, 2, 3, -1}, {5, 1, 2, -1}};

/* Rows lo..hi of one job. */
static void many_tile(int kind, const int64_t *job, int64_t lo, int64_t hi, float a, float b) {
    if (kind == MANY_SNIP) {
        const int64_t cols = job[4], bn = job[5];
        float *s = (float *)(uintptr_t)job[0] + lo * cols;
        const float *w = (const float *)(uintptr_t)job[1] + lo * bn * cols;
        const float *g = (const float *)(uintptr_t)job[2] + lo * bn * cols;
        if (bn == 1)
            snip_accumulate(s, w, g, (hi - lo) * cols, a, b);
        else
            snip_accumulate_blocks(s, w, g, hi - lo, cols, bn, (int)job[6], a, b);
    } else if (kind == MANY_ZERO) {
        const int64_t cols = job[3], bn = job[4];
        float *w = (float *)(uintptr_t)job[0];
        const uint8_t *pruned = (const uint8_t *)(uintptr_t)job[1];
        if (bn == 1)
            zero_pruned(w + lo * cols, pruned + lo * cols, (hi - lo) * cols);
        else
            zero_pruned_rows(w, pruned, lo, hi - lo, cols, bn);
    } else {
        const int64_t row = job[2], n = job[3], end = hi * row < n ? hi * row : n;
        count_rows((const float *)(uintptr_t)job[0] + lo * row, end - lo * row, row, a,
                   (float *)(uintptr_t)job[4] + lo);
    }
}

/* All tiles of all jobs of `kind`; 0, or -1 when out of memory (nothing done). */
static int run_many(int kind, const int64_t *jobs, int64_t njobs, int64_t tile, int threads, float a, float b) {
    const int fields = MANY[kind].fields, rows_at = MANY[kind].rows_at;
    int64_t *first = malloc((size_t)(2 * njobs + 1) * sizeof(int64_t)); /* first tile of each job */
    if (first == NULL)
        return -1;
    int64_t *per = first + njobs + 1; /* rows per tile */
    first[0] = 0;
    for (int64_t j = 0; j < njobs; ++j) {
        const int64_t *job = jobs + j * fields;
        const int64_t unit = job[MANY[kind].unit_at] * (MANY[kind].bn_at >= 0 ? job[MANY[kind].bn_at] : 1);
        per[j] = unit >= tile ? 1 : tile / unit;
        first[j + 1] = first[j] + (job[rows_at] + per[j] - 1) / per[j];
    }
    const int64_t tiles = first[njobs];
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t t = 0; t < tiles; ++t) {
        int64_t lo_job = 0, hi_job = njobs - 1; /* the last job whose first tile is <= t */
        while (lo_job < hi_job) {
            const int64_t mid = (lo_job + hi_job + 1) / 2;
            if (first[mid] <= t)
                lo_job = mid;
            else
                hi_job = mid - 1;
        }
        const int64_t *job = jobs + lo_job * fields, rows = job[rows_at];
        const int64_t lo = (t - first[lo_job]) * per[lo_job], hi = lo + per[lo_job] < rows ? lo + per[lo_job] : rows;
        many_tile(kind, job, lo, hi, a, b);
    }
    Py_END_ALLOW_THREADS
    free(first);
    return 0;
}

static PyObject *py_snip_accumulate_many(PyObject *self, PyObject *args) {
    unsigned long long jobs;
    long long njobs, tile;
    float alpha, beta;
    int threads;
    if (!PyArg_ParseTuple(args, "KLffLi", &jobs, &njobs, &alpha, &beta, &tile, &threads))
        return NULL;
    return PyLong_FromLong(run_many(MANY_SNIP, (const int64_t *)(uintptr_t)jobs, njobs, tile, threads, alpha, beta));
}

static PyObject *py_zero_pruned_many(PyObject *self, PyObject *args) {
    unsigned long long jobs;
    long long njobs, tile;
    int threads;
    if (!PyArg_ParseTuple(args, "KLLi", &jobs, &njobs, &tile, &threads))
        return NULL;
    return PyLong_FromLong(run_many(MANY_ZERO, (const int64_t *)(uintptr_t)jobs, njobs, tile, threads, 0.0f, 0.0f));
}

static PyObject *py_count_rows_many(PyObject *self, PyObject *args) {
    unsigned long long jobs;
    long long njobs, tile;
    float value;
    int threads;
    if (!PyArg_ParseTuple(args, "KLfLi", &jobs, &njobs, &value, &tile, &threads))
        return NULL;
    return PyLong_FromLong(run_many(MANY_COUNT, (const int64_t *)(uintptr_t)jobs, njobs, tile, threads, value, 0.0f));
}

/* Shares cut the block rows, or, with fewer block rows than threads (channelx1), the block
 * columns; each thread mallocs its tile rows. Returns -1 where an allocation failed. */
static PyObject *py_block_scores(PyObject *self, PyObject *args) {
    unsigned long long s, w, g, off, inv;
    long long rows, cols, inputs, bn, bm;
    int dt, el, how, accumulate, threads;
    float alpha, beta;
    if (!PyArg_ParseTuple(args, "KKKiiipffLLKKLLLi", &s, &w, &g, &dt, &el, &how, &accumulate, &alpha, &beta, &rows,
                          &cols, &off, &inv, &inputs, &bn, &bm, &threads))
        return NULL;
    const int64_t nbr = rows / bn, ncb = cols / bm;
    const int by_rows = nbr >= threads;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static, 1) reduction(| : failed)
    for (int t = 0; t < threads; ++t) {
        const int64_t br_lo = by_rows ? share(nbr, t, threads) : 0, br_hi = by_rows ? share(nbr, t + 1, threads) : nbr;
        const int64_t cb_lo = by_rows ? 0 : share(ncb, t, threads), cb_hi = by_rows ? ncb : share(ncb, t + 1, threads);
        const int64_t width = cb_hi - cb_lo;
        if (width <= 0 || br_hi <= br_lo)
            continue;
        float *buf = malloc((size_t)(8 * width * bm + width + 8) * sizeof(float));
        if (buf == NULL) {
            failed = 1;
            continue;
        }
        block_scores((float *)(uintptr_t)s, (const void *)(uintptr_t)w, (const void *)(uintptr_t)g, dt, el, how,
                     accumulate, alpha, beta, (int64_t)cols, (const int64_t *)(uintptr_t)off,
                     (const int64_t *)(uintptr_t)inv, (int64_t)inputs, (int64_t)bn, (int64_t)bm, br_lo, br_hi, cb_lo,
                     cb_hi, buf,
                     buf + 8 * width * bm);
        free(buf);
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(failed ? -1 : 0);
}

static PyObject *py_zero_blocks(PyObject *self, PyObject *args) {
    unsigned long long w, pruned, off, out;
    long long rows, cols, bn, bm;
    int dt, threads;
    if (!PyArg_ParseTuple(args, "KiKLLKLLKi", &w, &dt, &pruned, &rows, &cols, &off, &bn, &bm, &out, &threads))
        return NULL;
    int failed = 0;
    Py_BEGIN_ALLOW_THREADS
    #pragma omp parallel for num_threads(threads) schedule(static, 1) reduction(| : failed)
    for (int t = 0; t < threads; ++t) {
        float *keep = malloc((size_t)cols * sizeof(float));
        if (keep == NULL) {
            failed = 1;
            continue;
        }
        zero_blocks((void *)(uintptr_t)w, dt, (const uint8_t *)(uintptr_t)pruned, (int64_t)cols,
                    (const int64_t *)(uintptr_t)off, (int64_t)bn, (int64_t)bm, share(rows, t, threads),
                    share(rows, t + 1, threads), keep, (uint8_t *)(uintptr_t)out);
        free(keep);
    }
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(failed ? -1 : 0);
}

static PyMethodDef methods[] = {
    {"two_of_four", py_two_of_four, METH_VARARGS,
     "two_of_four(x, score, second, picked, tied, groups, threads) -> tied groups, or -1 on NaN (addresses)"},
    {"count_rows", py_count_rows, METH_VARARGS,
     "count_rows(x, n, row, value, counts, threads): per run of row scores, how many are <= value (addresses)"},
    {"at_or_below", py_at_or_below, METH_VARARGS,
     "at_or_below(x, n, value, out, threads): out = x <= value (addresses)"},
    {"between_rows", py_between_rows, METH_VARARGS,
     "between_rows(x, n, rows, nrows, row, low, high, values, positions, capacity, found, threads): the scores in "
     "(low, high] of the rows, share t's in its own capacity-long slice, its count in found[t] (addresses)"},
    {"zero_pruned", py_zero_pruned, METH_VARARGS,
     "zero_pruned(w, pruned, n, threads): w *= 0 where pruned (addresses)"},
    {"zero_pruned_rows", py_zero_pruned_rows, METH_VARARGS,
     "zero_pruned_rows(w, pruned, rows, cols, bn, threads): w[r] *= 0 where pruned[r / bn] (addresses)"},
    {"snip_accumulate", py_snip_accumulate, METH_VARARGS,
     "snip_accumulate(s, w, g, n, alpha, beta, threads): s = alpha * s + beta * |w * g| (addresses)"},
    {"snip_accumulate_blocks", py_snip_accumulate_blocks, METH_VARARGS,
     "snip_accumulate_blocks(s, w, g, rows, cols, bn, mean, alpha, beta, threads): the same for the "
     "sums (or means) of Nx1 blocks; rows are block rows (addresses)"},
    {"snip_accumulate_many", py_snip_accumulate_many, METH_VARARGS,
     "snip_accumulate_many(jobs, njobs, alpha, beta, tile, threads): snip_accumulate(_blocks) over many layers, "
     "jobs int64 [score, weight, grad, block rows, cols, bn, mean] each, tiles of ~tile weights to the threads as "
     "they come free; 0, or -1 when out of memory (addresses)"},
    {"zero_pruned_many", py_zero_pruned_many, METH_VARARGS,
     "zero_pruned_many(jobs, njobs, tile, threads): zero_pruned(_rows) over many layers, jobs int64 [weight, "
     "pruned, rows, cols, bn] each; 0, or -1 when out of memory (addresses)"},
    {"count_rows_many", py_count_rows_many, METH_VARARGS,
     "count_rows_many(jobs, njobs, value, tile, threads): count_rows over many layers, jobs int64 [scores, runs, "
     "row, n, counts] each; 0, or -1 when out of memory (addresses)"},
    {"block_scores", py_block_scores, METH_VARARGS,
     "block_scores(s, w, g, dtype, element, how, accumulate, alpha, beta, rows, cols, off, inv, inputs, bn, bm, "
     "threads): "
     "the bn x bm block scores of the 2-D view, stored or accumulated; 0, or -1 when out of memory (addresses)"},
    {"zero_blocks", py_zero_blocks, METH_VARARGS,
     "zero_blocks(w, dtype, pruned, rows, cols, off, bn, bm, out, threads): w *= 0 in the pruned bn x bm blocks "
     "of the 2-D view, or (out) out = the pruned mask in the weight's order; 0, or -1 when out of memory "
     "(addresses)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "Fused CPU kernels of the pruner (see kernels.py).", -1, methods,
};

/* setup.py passes the SHA-256 (16 hex digits) of this file: kernels.py refuses a build whose hash
 * differs from that of the _kernels.c beside it (a stale .so from before a pull), and runs the
 * PyTorch paths. Built without the define, the module says "unknown" and is refused too. */
#ifndef KERNELS_SOURCE_HASH
#define KERNELS_SOURCE_HASH "unknown"
#endif

PyMODINIT_FUNC PyInit__kernels(void) {
    PyObject *m = PyModule_Create(&module);
#ifdef _OPENMP
    const int openmp = 1;
#else
    const int openmp = 0; /* built without OpenMP: the pragmas are ignored and shares run in turn */
#endif
    if (m != NULL && (PyModule_AddStringConstant(m, "SOURCE_HASH", KERNELS_SOURCE_HASH) < 0
                      || PyModule_AddIntConstant(m, "OPENMP", openmp) < 0)) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
