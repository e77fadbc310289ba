/* Optional fused CPU kernels for the pruner (module workbench.pruner._kernels).
 *
 * Each function does in one pass over memory what the pure-PyTorch path in the pruner does with
 * several vector ops, and gives the same values (a zero's sign aside; tests/test_kernels.py
 * compares the two). The Python wrapper (kernels.py) checks dtypes, contiguity and sizes and splits the work
 * across threads; here we only take raw addresses, so nothing here validates its input.
 * The GIL is released while a kernel runs.
 *
 * Build: setup.py compiles this with -O3 as an optional extension; when no compiler is around,
 * the install still succeeds and the pruner uses its PyTorch path.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>

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

static PyObject *py_between_rows(PyObject *self, PyObject *args) {
    unsigned long long x, rows, values, positions;
    long long n, nrows, row, capacity;
    float low, high;
    if (!PyArg_ParseTuple(args, "KLKLLffKKL", &x, &n, &rows, &nrows, &row, &low, &high, &values, &positions,
                          &capacity))
        return NULL;
    int64_t found;
    Py_BEGIN_ALLOW_THREADS
    found = between_rows((const float *)(uintptr_t)x, (int64_t)n, (const int64_t *)(uintptr_t)rows, (int64_t)nrows,
                         (int64_t)row, low, high, (float *)(uintptr_t)values, (int64_t *)(uintptr_t)positions,
                         (int64_t)capacity);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong((long long)found);
}

/* w[i] *= 0 where pruned[i]: what multiplying by the keep mask does (a negative weight becomes
 * -0.0, NaN stays NaN), without building the 0/1 factor. */
VECTOR_CLONES
static void zero_pruned(float *w, const uint8_t *pruned, int64_t n) {
    for (int64_t i = 0; i < n; ++i) w[i] = pruned[i] ? w[i] * 0.0f : w[i];
}

static PyObject *py_zero_pruned(PyObject *self, PyObject *args) {
    unsigned long long w, pruned;
    long long n;
    if (!PyArg_ParseTuple(args, "KKL", &w, &pruned, &n))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    zero_pruned((float *)(uintptr_t)w, (const uint8_t *)(uintptr_t)pruned, (int64_t)n);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_count_rows(PyObject *self, PyObject *args) {
    unsigned long long x, counts;
    long long n, row;
    float value;
    if (!PyArg_ParseTuple(args, "KLLfK", &x, &n, &row, &value, &counts))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    count_rows((const float *)(uintptr_t)x, (int64_t)n, (int64_t)row, value, (float *)(uintptr_t)counts);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_at_or_below(PyObject *self, PyObject *args) {
    unsigned long long x, out;
    long long n;
    float value;
    if (!PyArg_ParseTuple(args, "KLfK", &x, &n, &value, &out))
        return NULL;
    Py_BEGIN_ALLOW_THREADS
    at_or_below((const float *)(uintptr_t)x, (int64_t)n, value, (uint8_t *)(uintptr_t)out);
    Py_END_ALLOW_THREADS
    Py_RETURN_NONE;
}

static PyObject *py_two_of_four(PyObject *self, PyObject *args) {
    unsigned long long x, score, second, picked, tied;
    long long groups;
    if (!PyArg_ParseTuple(args, "KKKKKL", &x, &score, &second, &picked, &tied, &groups))
        return NULL;
    int64_t result;
    Py_BEGIN_ALLOW_THREADS
    result = two_of_four((const float *)(uintptr_t)x, (float *)(uintptr_t)score,
                         (float *)(uintptr_t)second, (uint8_t *)(uintptr_t)picked,
                         (uint8_t *)(uintptr_t)tied, (int64_t)groups);
    Py_END_ALLOW_THREADS
    return PyLong_FromLongLong((long long)result);
}

static PyMethodDef methods[] = {
    {"two_of_four", py_two_of_four, METH_VARARGS,
     "two_of_four(x, score, second, picked, tied, groups) -> tied groups, or -1 on NaN (addresses)"},
    {"count_rows", py_count_rows, METH_VARARGS,
     "count_rows(x, n, row, value, counts): per run of row scores, how many are <= value (addresses)"},
    {"at_or_below", py_at_or_below, METH_VARARGS, "at_or_below(x, n, value, out): out = x <= value (addresses)"},
    {"between_rows", py_between_rows, METH_VARARGS,
     "between_rows(x, n, rows, nrows, row, low, high, values, positions, capacity) -> found (addresses)"},
    {"zero_pruned", py_zero_pruned, METH_VARARGS, "zero_pruned(w, pruned, n): w *= 0 where pruned (addresses)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "Fused CPU kernels of the pruner (see kernels.py).", -1, methods,
};

/* Bump with every change to a function's arguments or meaning: kernels.py refuses a build whose
 * ABI differs from its own (a stale .so from before a pull), and runs the PyTorch paths. */
#define KERNELS_ABI 1

PyMODINIT_FUNC PyInit__kernels(void) {
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "ABI", KERNELS_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
