/* A packed recurrent cell over a whole sequence, one kernel call forward and one backward
 * (topowire/compiler/sequence.py drives them; the layout and arguments are described at the
 * cells below), and the relational layers' block products.
 *
 * exp, sigmoid and tanh are written out so that the compiler vectorizes the loops (built with
 * -fno-math-errno -fno-trapping-math, so floorf is an instruction; no -ffast-math): exp is Cephes'
 * single-precision polynomial (1 ulp), sigmoid 1 / (1 + exp(-x)), and tanh a rational [13/6]
 * minimax approximation on [-7.999, 7.999] (Eigen's fast tanh; at most 5 ulp from tanh over
 * every float in [-12, 12], measured), one division and no exp: the GRU's forward 9-14% faster,
 * the LSTM's and tanh RNN's 14-17%, than with Cephes' tanh (exp and a division past |x| 0.625,
 * both branches computed per vector; AMD EPYC). Built with -ffp-contract=fast: a * b + c is one
 * FMA, in the polynomials (a third less time for a GRU step's forward) and the products.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>
#if defined(__AVX__)
#include <immintrin.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#define THREAD omp_get_thread_num()
#else
#define THREAD 0
#endif

/* The rows a loop reads and writes never overlap: vectorize without alias checks. */
#define IVDEP _Pragma("GCC ivdep")

static inline float exp_f(float x) {
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float k = floorf(x * 1.44269504088896341f + 0.5f);
    float r = x - k * 0.693359375f + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float y = p * r * r + r + 1.0f;
    union { int32_t i; float f; } scale = {((int32_t)k + 127) << 23};  /* 2^k */
    return y * scale.f;
}

static inline float sigmoid_f(float x) { return 1.0f / (1.0f + exp_f(-x)); }

/* tanh(x) = x p(x^2) / q(x^2), x clamped where tanh is 1 in float; x itself below 4e-4. */
static inline float tanh_f(float x) {
    const float c = 7.99881172180175781f;
    float xc = x < -c ? -c : x > c ? c : x, x2 = xc * xc;
    float p = x2 * -2.76076847742355e-16f + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = x2 * 1.19825839466702e-06f + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    float y = p * xc / q;
    return fabsf(x) < 0.0004f ? x : y;
}

/* Floats per vector register; the block products below tile ROWS rows of them. */
#if defined(__AVX512F__)
#define VEC 16
#define ROWS 8
#elif defined(__AVX__)
#define VEC 8
#define ROWS 4
#else
#define VEC 4
#define ROWS 4
#endif

/* A cell kernel's models split over `threads` threads of the OpenMP pool torch's own ops use
 * (see block_parallel below): each model's rows, and the rows of dx and db it adds into, are
 * its own, so the result does not depend on the thread count. */
#ifdef _OPENMP
#define OVER_MODELS _Pragma("omp parallel for num_threads(threads) schedule(static) if (threads > 1 && P > 1)")
#else
#define OVER_MODELS (void)threads;
#endif

/* Element-wise tanh/relu/sigmoid of a float array (the tests compare them with torch's). */
void unary_f(int64_t count, int64_t which, const float *x, float *y) {
    for (int64_t i = 0; i < count; i++)
        y[i] = which == 0 ? exp_f(x[i]) : which == 1 ? sigmoid_f(x[i]) : tanh_f(x[i]);
}

/* ---- Recurrent cells over their graph, one kernel call per sequence: each model runs its
 * time steps one after another, so its state stays in cache from one step to the next.
 *
 * A step's tensors are unit-major: model p's state is N rows of Bp lanes (the batch, padded
 * to whole vectors), h + p * h_ps + v * Bp; the saved gates likewise (a row per gate and unit).
 * A lane's work is the same whatever its neighbours, so rows run as vectors of VEC lanes, CH
 * vectors at a time.
 *
 * The recurrent product computes only the graph's connections: unit v of model p reads the
 * units col[e] for e in [rowptr[p * (N + 1) + v], rowptr[.. + v + 1]), with the weights
 * wv[e * G + g] of its G gates (W_hh[g * N + v, col[e]]), so its cost is the edges', not N^2.
 *
 * The input's gate pre-activations of gate column c (= g * N + v) come from a table (x + p *
 * x_ps + c * VEC holds its rows 0 .. R-1 for that column, R <= VEC) either picked per lane by
 * its symbol (sym != NULL; one-hot inputs, W_ih.T + b_ih) or summed over its rows weighted
 * by the lane's values (vals != NULL; narrow dense inputs, W_ih.T then b_ih, the last row's
 * value 1), or else they are dense (x + p * x_ps + c * x_cs + lane, a step of every step's
 * projection).
 *
 * live[lane] (int32, 0 or 1): the lane's sequence is still running at this step; an ended
 * one holds its state and its gates get no gradient. Only the first nvs[t] vectors of lanes
 * are computed (lanes sorted longest first: the running ones); the rest hold their state.
 */
typedef float vf __attribute__((vector_size(VEC * 4)));
typedef float vfu __attribute__((vector_size(VEC * 4), aligned(4)));
typedef int32_t vi __attribute__((vector_size(VEC * 4)));
#if defined(__AVX512F__)
#define CH 4
#else
#define CH 2
#endif
#define INLINE static inline __attribute__((always_inline))
#define LANES_OF(nc) for (int64_t l = 0; l < (nc) * VEC; l++)
#define WIDE (2 * CH)
/* A chunk's lanes by table row (symbols): one[r][i] is 1 where lane j of vector i has symbol r,
 * else 0 (the input's gradient summed per symbol as products: a masked sum costs three
 * operations); or (values) the lanes' values of row r. A backward's per-unit pass takes up to
 * WIDE vectors at once (its products over the edges, CH): each table row's partial sums are
 * read and written once per WIDE vectors. */
typedef struct { vf one[VEC][WIDE]; } by_symbol;

/* The table's entry of each lane's symbol: lane i of the result is t[ix[i]]. */
INLINE vf pick(vf t, vi ix) {
#if defined(__clang__)
    vf r;
    for (int i = 0; i < VEC; i++)
        r[i] = t[ix[i] & (VEC - 1)];
    return r;
#else
    return __builtin_shuffle(t, ix);
#endif
}

/* One model's step: what every cell kernel reads. */
typedef struct {
    int64_t N, n, Bp, R, x_cs;  /* n: this model's own units (N: the pack's, padded) */
    const int64_t *rp, *col;  /* rp: this model's N + 1 row offsets */
    const float *wv, *x;      /* wv: this model's edge weights, G per edge from rp[0] (model_scratch) */
    const int32_t *sym, *live;
    const float *val;         /* this step's values [R, Bp] (narrow dense inputs), or NULL */
    int32_t present;          /* bit r: some running lane has symbol r at this step */
} step_in;

INLINE step_in model_step(int64_t p, int64_t N, int64_t n, int64_t Bp, int64_t R, const int64_t *rowptr,
                          const int64_t *col, const float *wv, const float *x, int64_t x_ps, int64_t x_cs,
                          const int32_t *sym, const int32_t *live, const float *val, int32_t present) {
    step_in m = {N, n, Bp, R, x_cs, rowptr + p * (N + 1), col, wv, x + p * x_ps, sym, live, val, present};
    return m;
}

/* The input's pre-activation of column c at vector i of the chunk at lane l0 (ix: its symbols;
 * bs: its values, see symbols). */
INLINE vf input_at(const step_in *m, const vi *ix, const by_symbol *bs, int64_t c, int64_t l0, int i) {
    if (m->val) {
        const float *t = m->x + c * VEC;
        vf sum = t[0] * bs->one[0][i];
        for (int32_t r = 1; r < m->R; r++)
            sum += t[r] * bs->one[r][i];
        return sum;
    }
    return m->sym ? pick(*(const vfu *)(m->x + c * VEC), ix[i]) : *(const vfu *)(m->x + c * m->x_cs + l0 + i * VEC);
}

/* acc[g][i] = sum over unit v's edges e of wv[e, g] * h[col[e], lanes of vector i] (wv, and
 * wacc below, indexed from the model's first edge, rp[0]). */
INLINE void edge_sums(const step_in *m, int G, int nc, int64_t v, const float *h, int64_t l0, vf acc[4][CH]) {
    for (int g = 0; g < G; g++)
        for (int i = 0; i < nc; i++)
            acc[g][i] = (vf){0};
    for (int64_t e = m->rp[v]; e < m->rp[v + 1]; e++) {
        const float *hk = h + m->col[e] * m->Bp + l0, *w = m->wv + (e - m->rp[0]) * G;
        for (int i = 0; i < nc; i++) {
            vf x = *(const vfu *)(hk + i * VEC);
            for (int g = 0; g < G; g++)
                acc[g][i] += w[g] * x;
        }
    }
}

/* The backward's products over unit v's edges: the gradient reaching each neighbour's state,
 * prev[col[e]] += sum_g wv[e, g] dg[g] (dg: v's gate gradients, G rows of nc vectors), and
 * the weights' gradient, wacc[e, g] (VEC partial sums) += h[col[e]] . dg[g]. */
INLINE void edge_grads(const step_in *m, int G, int nc, int64_t v, const float *h, int64_t l0, const float *dg,
                       int64_t dg_rs, float *prev, float *wacc) {
    vf d[4][CH];
    for (int g = 0; g < G; g++)
        for (int i = 0; i < nc; i++)
            d[g][i] = *(const vfu *)(dg + g * dg_rs + i * VEC);
    for (int64_t e = m->rp[v]; e < m->rp[v + 1]; e++) {
        int64_t k = m->col[e] * m->Bp + l0, at = (e - m->rp[0]) * G;
        const float *w = m->wv + at;
        vf s[4] = {{0}};
        for (int i = 0; i < nc; i++) {
            vf hk = *(const vfu *)(h + k + i * VEC), pk = *(vfu *)(prev + k + i * VEC);
            for (int g = 0; g < G; g++) {
                pk += w[g] * d[g][i];
                s[g] += hk * d[g][i];
            }
            *(vfu *)(prev + k + i * VEC) = pk;
        }
        for (int g = 0; g < G; g++)
            *(vf *)(wacc + (at + g) * VEC) += s[g];
    }
}

/* Rows saved for the backward pass: with `nt`, sent to memory without being read first
 * (streaming stores, where the vector unit has them and dst is aligned; plain ones otherwise),
 * for a backward that reads them long after, from memory anyway (the thread that saved a
 * model's rows ends with fence()); without, plain stores, which stay in cache for a backward
 * that follows at once (a training step's, see gru_train). */
INLINE void save(float *dst, const float *src, int nc, int nt) {
#if defined(__AVX512F__)
    if (nt && ((uintptr_t)dst & 63) == 0) {
        for (int i = 0; i < nc; i++)
            _mm512_stream_ps(dst + i * VEC, _mm512_loadu_ps(src + i * VEC));
        return;
    }
#elif defined(__AVX__)
    if (nt && ((uintptr_t)dst & 31) == 0) {
        for (int i = 0; i < nc; i++)
            _mm256_stream_ps(dst + i * VEC, _mm256_loadu_ps(src + i * VEC));
        return;
    }
#endif
    memcpy(dst, src, nc * VEC * sizeof(float));
}

static void fence(void) {
#if defined(__AVX__)
    _mm_sfence();
#endif
}

/* acc (VEC partial sums) += the sum of nc vectors of lanes g. */
INLINE void add_lanes(int nc, const float *g, float *acc) {
    vf sum = *(const vfu *)g;
    for (int i = 1; i < nc; i++)
        sum += *(const vfu *)(g + i * VEC);
    *(vf *)acc += sum;
}

/* The symbols of a chunk's lanes (where the input is a table picked by symbol), and by symbol
 * (bs, or NULL); where it is weighted by values, the lanes' values of each row in bs. */
INLINE void symbols(const step_in *m, int64_t l0, int nc, vi *ix, by_symbol *bs) {
    if (m->val) {
        for (int32_t r = 0; bs != NULL && r < m->R; r++)
            for (int i = 0; i < nc; i++)
                bs->one[r][i] = *(const vfu *)(m->val + r * m->Bp + l0 + i * VEC);
        return;
    }
    for (int i = 0; i < nc && m->sym; i++)
        ix[i] = *(const vi *)(m->sym + l0 + i * VEC);
    for (int32_t r = 0; bs != NULL && r < m->R && m->sym; r++)
        for (int i = 0; i < nc && (m->present >> r & 1); i++)
            bs->one[r][i] = (vf)((vi)((vf){0} + 1.0f) & (ix[i] == (vi){0} + r));
}

/* Unit v's input gradient, for each of its G gates k the nc vectors of lanes g[k] from lane
 * l0 (column k N + v): summed per symbol into dx + c * R * VEC (VEC partial sums for each of the
 * R table rows; a chunk's vectors are summed first, so each row is read and written once per
 * chunk, and each symbol's lanes serve the G gates at once) or written (dense: dx + c * x_cs +
 * lane). */
INLINE void input_grads(const step_in *m, const by_symbol *bs, float *dx, int G, int64_t v, int64_t l0, int nc,
                        const float *const *g) {
    if (m->sym == NULL && m->val == NULL) {
        for (int k = 0; k < G; k++)
            for (int i = 0; i < nc; i++)
                *(vfu *)(dx + (k * m->N + v) * m->x_cs + l0 + i * VEC) = *(const vfu *)(g[k] + i * VEC);
        return;
    }
    vf gv[4][WIDE];
    for (int k = 0; k < G; k++)
        for (int i = 0; i < nc; i++)
            gv[k][i] = *(const vfu *)(g[k] + i * VEC);
    for (int32_t r = 0; r < m->R; r++) {
        if (!(m->present >> r & 1))
            continue;  /* no running lane has this symbol: nothing to add */
        vf sum[4];
        for (int k = 0; k < G; k++)
            sum[k] = bs->one[r][0] * gv[k][0];
        for (int i = 1; i < nc; i++) {
            vf one = bs->one[r][i];
            for (int k = 0; k < G; k++)
                sum[k] += one * gv[k][i];
        }
        for (int k = 0; k < G; k++)
            *(vf *)(dx + ((k * m->N + v) * m->R + r) * VEC) += sum[k];
    }
}

/* o[lane] += e[lane] over nc vectors, e (a gradient from outside) or NULL: apart from the
 * lane loops, whose vectorized `e == NULL ? 0 : e[l]` is a masked load per vector. */
INLINE void add_outside(int nc, const float *e, float *o) {
    if (e != NULL) {
        IVDEP
        LANES_OF(nc) o[l] += e[l];
    }
}

/* Lanes [from, Bp) of rows [0, rows) of a model's state: held (copied) or, for a gradient,
 * passed on plus e (from outside, or NULL). */
static void hold(int64_t rows, int64_t Bp, int64_t from, const float *a, const float *e, float *out) {
    if (from == Bp || rows <= 0)
        return;  /* every lane computed: nothing held */
    if (from == 0 && e == NULL) {
        memcpy(out, a, rows * Bp * sizeof(float));  /* whole rows: one block */
        return;
    }
    for (int64_t v = 0; v < rows; v++) {
        float *o = out + v * Bp;
        const float *x = a + v * Bp;
        if (e == NULL) {
            IVDEP
            for (int64_t l = from; l < Bp; l++)
                o[l] = x[l];
        } else {
            const float *y = e + v * Bp;
            IVDEP
            for (int64_t l = from; l < Bp; l++)
                o[l] = x[l] + y[l];
        }
    }
}

/* The last slot (T % ring) of a model's states h [ring, N, Bp] where they were not held every
 * step: each vector of lanes its state when last computed (a vector computed at the steps before
 * t_j is in slot t_j % ring: no later step writes it), the padding units (from n) zero. */
static void final_states(int64_t T, int64_t ring, int64_t N, int64_t n, int64_t Bp, const int64_t *nvs, float *h) {
    float *last = h + T % ring * N * Bp;
    for (int64_t j = T ? nvs[T - 1] : 0; j < Bp / VEC; j++) {
        int64_t tj = 0;
        while (tj < T && nvs[tj] > j)
            tj++;
        const float *from = h + tj % ring * N * Bp;
        for (int64_t v = 0; v < n && from != last; v++)
            memcpy(last + v * Bp + j * VEC, from + v * Bp + j * VEC, VEC * sizeof(float));
    }
    memset(last + n * Bp, 0, (N - n) * Bp * sizeof(float));
}

/* A model's working ring where its states are streamed (`streamed`): each step computes in two
 * slots of its own (`copies` states per slot: h, and c for a cell with memory; the first slot
 * zero), which stay in cache, and streams its new states into the kept buffer the backward
 * reads; written there in place, each line of a pack's states larger than the cache is read
 * from memory before it is written (the GRU's forward at batch 128 18% slower). NULL (written
 * in place) without, or where no memory is left. */
static float *working_ring(int64_t streamed, int64_t N, int64_t Bp, int copies) {
    float *work = streamed ? malloc(2 * copies * N * Bp * sizeof(float)) : NULL;
    for (int k = 0; k < copies && work != NULL; k++)
        memset(work + 2 * k * N * Bp, 0, N * Bp * sizeof(float));
    return work;
}

/* Splits a model's computed vectors into chunks of CH (the last one shorter) and calls
 * body(nc, l0) with nc a constant, so that each chunk's accumulators stay in registers. */
#define CHUNKS_OF(width, nv, body)                                    \
    for (int64_t l0 = 0; l0 < (nv) * VEC; l0 += (width) * VEC) {      \
        int64_t left_ = (nv) - l0 / VEC;                              \
        if (left_ >= (width)) body(width, l0);                        \
        else if ((width) > 1 && left_ == 1) body(1, l0);              \
        else if ((width) > 2 && left_ == 2) body(2, l0);              \
        else if ((width) > 3 && left_ == 3) body(3, l0);              \
        else if ((width) > 4 && left_ == 4) body(4, l0);              \
        else if ((width) > 5 && left_ == 5) body(5, l0);              \
        else if ((width) > 6 && left_ == 6) body(6, l0);              \
        else if ((width) > 7 && left_ == 7) body(7, l0);              \
    }
#define CHUNKS(nv, body) CHUNKS_OF(CH, nv, body)

/* What every cell kernel takes first: the sequence of T steps, nvs[t] vectors computed at step t;
 * the recurrent weights w [P, G*N, N] (dense) and their mask [P, N, N]: only the graph's entries
 * are read, times the mask's (the masked weights are w times mask per gate);
 * step t's inputs at x + t * x_ts (dense: x_ts = Bp; a table: 0), its symbols, values and
 * live flags at sym + t * Bp, vals + t * R * Bp and live + t * Bp; sizes[p], model p's own
 * units (the rest padding, see PADDING); scratch, `slot` floats for each thread (model_scratch). */
#define SEQ_ARGS int64_t threads, int64_t P, int64_t T, int64_t N, int64_t Bp, const int64_t *nvs, int64_t R,    \
    const int64_t *rowptr, const int64_t *col, const float *w, const float *mask, const float *x, int64_t x_ps,  \
    int64_t x_cs, int64_t x_ts, const int32_t *sym, const float *vals, const int32_t *live,                        \
    const int32_t *present, const int64_t *sizes, float *scratch, int64_t slot, int64_t emax
/* SEQ_ARGS passed on, to a model's forward or backward. */
#define SEQ threads, P, T, N, Bp, nvs, R, rowptr, col, w, mask, x, x_ps, x_cs, x_ts, sym, vals, live, present, \
    sizes, scratch, slot, emax
/* The input is a table (picked by symbol or weighted by values; see above). */
#define TABLE (sym != NULL || vals != NULL)
/* Model p's step t; the gradient from outside reaching its state before the step (h_t: the
 * model's e at row t - 1, none for h_0); two gradient buffers swapped after a backward step. */
#define MODEL model_step(p, N, sizes[p], Bp, R, rowptr, col, wv, x + t * x_ts, x_ps, x_cs, \
                         sym ? sym + t * Bp : NULL, live + t * Bp, vals ? vals + t * R * Bp : NULL, \
                         sym ? present[t] : -1)
/* A model's units past its own (a narrower model's padding: no edges, no input, not read out)
 * are not computed; their states hold (zero from h_0), their gradients stay zero. */
#define PADDING(a, o) hold(N - sizes[p], Bp, 0, (a) + sizes[p] * Bp, NULL, (o) + sizes[p] * Bp)
/* A forward's states of the lanes a step does not compute (ended sequences) and of the padding
 * units: held at every step where every state is read (`every`); else nothing reads them but
 * the last step's slot, which final_states fills once, after the model's last step. */
#define HELD(a, o) do { if (every) { hold(N, Bp, nvs[t] * VEC, (a), NULL, (o)); PADDING((a), (o)); } } while (0)
/* Step t reads a and writes o in the working ring where there is one (its state k of a slot),
 * the kept slot o was going to be streamed to. */
#define WORKING(a, o, kept, k) do { if (work != NULL) { kept = (o); (a) = work + (2 * (k) + t % 2) * N * Bp; \
                                                      (o) = work + (2 * (k) + (t + 1) % 2) * N * Bp; } } while (0)
#define OUTSIDE (e == NULL || t == 0 ? NULL : e + (t - 1) * N * Bp)
#define SWAP(a, b) do { float *swap_ = a; a = b; b = swap_; } while (0)
/* Model p's scratch (G gates; accumulators zeroed for a backward), and its gradients from it:
 * the weights' (dw [P, G*N, N]), the table's (dx, where the input is one) and b_hh's (db or NULL). */
#define SCRATCH(G, backward) model_scratch(scratch, slot, rowptr + p * (N + 1), col, w + p * (G) * N * N, \
                                           mask + p * N * N, N, TABLE ? R : 0, G, backward, emax)
#define GRADS(G, db) model_grads(&sc, rowptr + p * (N + 1), col, mask + p * N * N, N, R, G, dw + p * (G) * N * N, \
                                 TABLE ? dx + p * dx_ps : NULL, db)
/* Where a step's input gradient goes: the table's partial sums (where the input is a table), else
 * the step's own rows. */
#define DX (TABLE ? sc.dx : dx + p * dx_ps + t * x_ts)

/* A model's scratch, in its thread's slot: its masked edge weights as the kernels read them
 * (wv, wv[(e - rp[0]) * G + g] = w[g * N + v, col[e]] mask[v, col[e]] for edge e into unit v)
 * and, in a backward, accumulators set to zero: the weights' gradient (wacc, VEC partial sums
 * per edge and gate), the input table's (dx, R rows of VEC partial sums per gate column, where
 * the input is a table) and b_hh's (db, VEC partial sums per gate column). The slot holds E G floats rounded
 * to whole vectors, then E G, G N R (R: 0 where the input is no table) and G N vectors (E: the
 * most edges of a model). */
typedef struct { float *wv, *wacc, *dx, *db; } scratch_t;

static int64_t weights_floats(int64_t emax, int64_t G) { return (emax * G + VEC - 1) / VEC * VEC; }

static int64_t slot_floats(int64_t emax, int64_t G, int64_t N, int64_t R) {
    return weights_floats(emax, G) + emax * G * VEC + G * N * R * VEC + G * N * VEC;
}

/* The floats of one thread's slot (the layout above), for the caller to allocate. */
void scratch_floats(int64_t emax, int64_t G, int64_t N, int64_t R, int64_t *out) { *out = slot_floats(emax, G, N, R); }

static scratch_t model_scratch(float *scratch, int64_t slot, const int64_t *rp, const int64_t *col, const float *w,
                               const float *mask, int64_t N, int64_t R, int G, int backward, int64_t emax) {
    float *base = scratch + (int64_t)THREAD * slot, *wacc = base + weights_floats(emax, G);
    scratch_t sc = {base, wacc, wacc + emax * G * VEC, wacc + emax * G * VEC + G * N * R * VEC};
    for (int64_t v = 0; v < N; v++)
        for (int64_t e = rp[v]; e < rp[v + 1]; e++)
            for (int g = 0; g < G; g++)
                sc.wv[(e - rp[0]) * G + g] = w[(g * N + v) * N + col[e]] * mask[v * N + col[e]];
    if (backward)
        memset(wacc, 0, (slot_floats(emax, G, N, R) - weights_floats(emax, G)) * sizeof(float));
    return sc;
}

/* The sum of a vector's lanes: halves added (AVX-512) -- a model's gradients sum 2,000 or so
 * (model_grads), which as a scalar loop took 8% of a training step's kernel time at batch 32
 * (64 GRUs, AMD EPYC). */
INLINE float hsum(vf x) {
#if VEC == 16 && !defined(__clang__)
    x += __builtin_shuffle(x, (vi){8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3, 4, 5, 6, 7});
    x += __builtin_shuffle(x, (vi){4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11});
    x += __builtin_shuffle(x, (vi){2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13});
    x += __builtin_shuffle(x, (vi){1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14});
    return x[0];
#else
    float sum = 0.0f;
    for (int i = 0; i < VEC; i++)
        sum += x[i];
    return sum;
#endif
}

/* A model's gradients from its scratch's partial sums: the weights' dense (dw [G*N, N], zero off
 * the graph; through the mask, times its entries), the input table's (dx [G*N, VEC], where the
 * input is a table) and b_hh's (db [G*N], or NULL). */
static void model_grads(const scratch_t *sc, const int64_t *rp, const int64_t *col, const float *mask, int64_t N,
                        int64_t R, int G, float *dw, float *dx, float *db) {
    memset(dw, 0, G * N * N * sizeof(float));
    for (int64_t v = 0; v < N; v++)
        for (int64_t e = rp[v]; e < rp[v + 1]; e++)
            for (int g = 0; g < G; g++)
                dw[(g * N + v) * N + col[e]] = hsum(*(const vf *)(sc->wacc + ((e - rp[0]) * G + g) * VEC))
                                               * mask[v * N + col[e]];
    for (int64_t c = 0; c < G * N && dx != NULL; c++)
        for (int r = 0; r < VEC; r++)
            dx[c * VEC + r] = r < R ? hsum(*(const vf *)(sc->dx + (c * R + r) * VEC)) : 0.0f;
    for (int64_t c = 0; c < G * N && db != NULL; c++)
        db[c] = hsum(*(const vf *)(sc->db + c * VEC));
}

/* ---- A training step in one call per cell (gru_train, lstm_train, act_train): each model's
 * forward, loss and backward one after another, so the rows its backward reads are still in
 * cache: kept for a whole pack until its loss is known, they go to memory and come back (a
 * third of the GRU's backward at batch 128; measured on the AMD EPYC). The loss is the
 * readout's cross-entropy or squared error (train_head); its gradient reaching the last state
 * starts the backward. What the step adds to every kernel's arguments: the batch's B lanes,
 * the readout's O outputs and their targets y (squared: floats [B, O], else classes [B],
 * int64), the readout's masked weights wr [P, O, N] and bias bo [P, O], each thread's work
 * buffer (work_ps floats apart, train_floats), and where the models' losses (loss [P]) and
 * the readout's gradients (dwr [P, O, N], dbo [P, O]) go. */
#define HEAD_ARGS int64_t B, int64_t O, int64_t squared, const void *y, const float *wr, const float *bo,           \
    float *work, int64_t work_ps, float *loss, float *dwr, float *dbo
/* Model p's loss and the gradients of its readout, from its work k (see train_head). */
#define HEAD(k) train_head(N, sizes[p], Bp, B, O, squared, y, wr + p * O * N, bo + p * O, (k).h + T * N * Bp, \
                           (k).z, (k).d, dwr + p * O * N, dbo + p * O)

/* One model's buffers in its thread's work buffer: states h (and c) [T + 1, N, Bp], saved rows s
 * [T, saved * N, Bp], the backward's d, prev (and dc, cprev) [N, Bp] and dg [G * N, Bp], the
 * readout's scratch z [O + 2, Bp]; h_0 (c_0) and dc zero. */
typedef struct { float *h, *c, *s, *d, *dc, *prev, *cprev, *dg, *z; } model_work;

static int64_t work_floats(int64_t T, int64_t N, int64_t Bp, int64_t G, int64_t saved, int64_t memory, int64_t O) {
    return ((T + 1) * (1 + memory) + T * saved + 2 * (1 + memory) + G) * N * Bp + (O + 2) * Bp;
}

/* The floats of one thread's work buffer (the layout above), for the caller to allocate. */
void train_floats(int64_t T, int64_t N, int64_t Bp, int64_t G, int64_t saved, int64_t memory, int64_t O,
                  int64_t *out) {
    *out = work_floats(T, N, Bp, G, saved, memory, O);
}

static model_work carve(float *work, int64_t T, int64_t N, int64_t Bp, int64_t G, int64_t saved, int memory) {
    int64_t row = N * Bp, states = (T + 1) * row;
    model_work k = {work, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    float *at = work + states;
    if (memory) {
        k.c = at;
        at += states;
    }
    k.s = at;
    at += T * saved * row;
    k.d = at;
    at += row;
    k.prev = at;
    at += row;
    if (memory) {
        k.dc = at;
        k.cprev = at + row;
        at += 2 * row;
        memset(k.c, 0, row * sizeof(float));
        memset(k.dc, 0, row * sizeof(float));
    }
    k.dg = at;
    k.z = at + G * row;
    memset(k.h, 0, row * sizeof(float));
    return k;
}

/* The cross-entropy of logits z [O, Bp] against the classes y [B], summed over the B lanes, as
 * torch's cross_entropy computes it (softmax with the largest logit subtracted; each lane's log
 * of its sum of exponentials taken as the log of a product over 16 lanes, each factor in
 * [1, O]); z becomes its gradient, divided by B (zero past lane B). top, sum: [Bp] scratch. */
static double cross_entropy(int64_t Bp, int64_t B, int64_t O, const int64_t *y, float *z, float *top, float *sum) {
    memcpy(top, z, Bp * sizeof(float));
    memset(sum, 0, Bp * sizeof(float));
    for (int64_t o = 1; o < O; o++)
        for (int64_t l = 0; l < Bp; l++)
            top[l] = fmaxf(top[l], z[o * Bp + l]);
    double total = 0.0, product = 1.0;
    for (int64_t l = 0; l < B; l++)
        total += top[l] - z[y[l] * Bp + l];
    for (int64_t o = 0; o < O; o++) {
        float *zo = z + o * Bp;
        IVDEP
        for (int64_t l = 0; l < Bp; l++) {
            zo[l] = exp_f(zo[l] - top[l]);
            sum[l] += zo[l];
        }
    }
    for (int64_t l = 0; l < B; l++) {
        product *= sum[l];
        if (l % 16 == 15 || l == B - 1) {
            total += log(product);
            product = 1.0;
        }
    }
    for (int64_t o = 0; o < O; o++) {
        float *zo = z + o * Bp;
        for (int64_t l = 0; l < B; l++)
            zo[l] = (zo[l] / sum[l] - (y[l] == o ? 1.0f : 0.0f)) / (float)B;
        memset(zo + B, 0, (Bp - B) * sizeof(float));
    }
    return total;
}

/* The squared error of outputs z [O, Bp] against the targets y [B, O], summed over the B lanes
 * and O outputs; z becomes its gradient, divided by B O (zero past lane B). */
static double squared_error(int64_t Bp, int64_t B, int64_t O, const float *y, float *z) {
    double total = 0.0;
    for (int64_t o = 0; o < O; o++) {
        float *zo = z + o * Bp;
        for (int64_t l = 0; l < B; l++) {
            float e = zo[l] - y[l * O + o];
            total += (double)e * e;
            zo[l] = 2.0f * e / (float)(B * O);
        }
        memset(zo + B, 0, (Bp - B) * sizeof(float));
    }
    return total;
}

/* A model's loss in a training step, the mean over the batch's B lanes (and, squared, the O
 * outputs) of the cross-entropy or squared error of the readout of its last state hl [N, Bp]
 * (z[o] = bo[o] + wr[o, :n] . hl[:n, lane]; wr [O, N], n its own units) against y (see
 * HEAD_ARGS). Its gradient reaching hl goes to d [N, Bp] (zero past lane B and unit n), wr's
 * and bo's to dwr [O, N] and dbo [O]; z [O + 2, Bp] is scratch. */
static float train_head(int64_t N, int64_t n, int64_t Bp, int64_t B, int64_t O, int64_t squared, const void *y,
                        const float *wr, const float *bo, const float *hl, float *z, float *d, float *dwr,
                        float *dbo) {
    for (int64_t o = 0; o < O; o++) {
        float *zo = z + o * Bp;
        for (int64_t l = 0; l < Bp; l++)
            zo[l] = bo[o];
        for (int64_t v = 0; v < n; v++) {
            const float wo = wr[o * N + v], *hv = hl + v * Bp;
            IVDEP
            for (int64_t l = 0; l < Bp; l++)
                zo[l] += wo * hv[l];
        }
    }
    double total = squared ? squared_error(Bp, B, O, y, z) / (double)O
                           : cross_entropy(Bp, B, O, y, z, z + O * Bp, z + (O + 1) * Bp);
    for (int64_t o = 0; o < O; o++) {
        float acc = 0.0f;
        for (int64_t l = 0; l < B; l++)
            acc += z[o * Bp + l];
        dbo[o] = acc;
    }
    for (int64_t v = 0; v < N; v++) {
        float *dv = d + v * Bp;
        const float *hv = hl + v * Bp;
        memset(dv, 0, Bp * sizeof(float));
        for (int64_t o = 0; o < O; o++) {
            const float wo = wr[o * N + v], *zo = z + o * Bp;
            float acc = 0.0f;
            if (v < n) {
                IVDEP
                for (int64_t l = 0; l < Bp; l++)
                    dv[l] += wo * zo[l];
                for (int64_t l = 0; l < B; l++)
                    acc += zo[l] * hv[l];
            }
            dwr[o * N + v] = acc;
        }
    }
    return (float)(total / (double)B);
}

/* ---- GRU (torch's gates r, z, n; b_hh apart, as the reset gate scales its n part): saves
 * r, z, n and the recurrent n pre-activation (with its bias) per unit, 4 rows of N, where s is
 * not NULL (a forward no backward follows saves nothing). Summing the n pre-activation again
 * in the backward instead of saving it was no faster (one gate's edges per unit: GRU backward
 * +13% in one measurement; within 3% either way, interleaved, once the other changes were in;
 * AMD EPYC). */
INLINE void gru_chunk(const step_in *m, int nc, int64_t l0, const float *bh, const float *h, float *hn, float *s,
                      int64_t N, float *kept, int nt) {
    vi ix[CH];
    by_symbol bs;  /* values alone: the forward picks symbols by ix */
    symbols(m, l0, nc, ix, m->val ? &bs : NULL);
    for (int64_t v = 0; v < m->n; v++) {
        vf acc[4][CH];
        float pr[CH * VEC], pz[CH * VEC], pn[CH * VEC], ph[CH * VEC];
        edge_sums(m, 3, nc, v, h, l0, acc);
        for (int i = 0; i < nc; i++) {
            *(vfu *)(pr + i * VEC) = input_at(m, ix, &bs, v, l0, i) + (acc[0][i] + bh[v]);
            *(vfu *)(pz + i * VEC) = input_at(m, ix, &bs, N + v, l0, i) + (acc[1][i] + bh[N + v]);
            *(vfu *)(pn + i * VEC) = input_at(m, ix, &bs, 2 * N + v, l0, i);
            *(vfu *)(ph + i * VEC) = acc[2][i] + bh[2 * N + v];
        }
        const float *hp = h + v * m->Bp + l0;
        const int32_t *lv = m->live + l0;
        float *ho = hn + v * m->Bp + l0;
        IVDEP
        LANES_OF(nc) {
            float r = sigmoid_f(pr[l]), z = sigmoid_f(pz[l]);
            float n = tanh_f(pn[l] + r * ph[l]);
            float y = (1.0f - z) * n + z * hp[l];
            ho[l] = lv[l] ? y : hp[l];
            pr[l] = r;
            pz[l] = z;
            pn[l] = n;
        }
        if (kept != NULL)
            save(kept + v * m->Bp + l0, ho, nc, 1);
        if (s != NULL) {
            float *s0 = s + v * m->Bp + l0;
            save(s0, pr, nc, nt);
            save(s0 + N * m->Bp, pz, nc, nt);
            save(s0 + 2 * N * m->Bp, pn, nc, nt);
            save(s0 + 3 * N * m->Bp, ph, nc, nt);
        }
    }
}

/* Model p's GRU forward: h, its states [ring, N, Bp], h_0 given, step t's at t % ring (ring T + 1:
 * every step kept; 2: the last two, for a forward that reads only the last); every: every
 * step's states are read (else the lanes a step skips are filled in the last slot alone, see
 * HELD); streamed: steps compute in a working ring and stream their states to h (working_ring;
 * not with every); s, its saved rows [T, 4N, Bp] or NULL, streamed to memory with nt (see
 * save); bias: b_hh [P, 3N]. The model runs its steps one after another, so its state stays
 * in cache from step to step. */
static void gru_model_forward(SEQ_ARGS, int64_t p, const float *bias, float *h, int64_t ring, int64_t every,
                              int64_t streamed, float *s, int nt) {
    const float *bh = bias + p * 3 * N, *wv = SCRATCH(3, 0).wv;
    float *work = working_ring(streamed, N, Bp, 1);
    for (int64_t t = 0; t < T; t++) {
        step_in m = MODEL;
        float *hp = h + t % ring * N * Bp, *ho = h + (t + 1) % ring * N * Bp, *kept = NULL;
        WORKING(hp, ho, kept, 0);
        float *sp = s ? s + t * 4 * N * Bp : NULL;
#define GRU_FW(nc, l0) gru_chunk(&m, nc, l0, bh, hp, ho, sp, N, kept, nt)
        CHUNKS(nvs[t], GRU_FW)
        HELD(hp, ho);
    }
    free(work);
    fence();
    if (!every)
        final_states(T, ring, N, sizes[p], Bp, nvs, h);
}

/* The GRU over a pack's sequence: model p's forward (above) on h + p * h_ps, s + p * s_ps (h:
 * [P, ring, N, Bp]; s: [P, T, 4N, Bp] or NULL), its saved rows streamed to memory. */
void gru_forward(SEQ_ARGS, const float *bias, float *h, int64_t h_ps, int64_t ring, int64_t every, int64_t streamed,
                 float *s, int64_t s_ps) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++)
        gru_model_forward(SEQ, p, bias, h + p * h_ps, ring, every, streamed, s ? s + p * s_ps : NULL, 1);
}

INLINE void gru_back_units(const step_in *m, int nc, int64_t l0, const float *d, const float *e, const float *s,
                           const float *h, float *dx, float *dg, float *db, float *prev, int64_t N) {
    vi ix[WIDE];
    int64_t Bp = m->Bp;
    by_symbol bs;
    symbols(m, l0, nc, ix, &bs);
    for (int64_t v = 0; v < m->n; v++) {
        const float *dv = d + v * Bp + l0, *hp = h + v * Bp + l0, *s0 = s + v * Bp + l0, *s1 = s0 + N * Bp;
        const float *s2 = s1 + N * Bp, *s3 = s2 + N * Bp, *ev = e == NULL ? NULL : e + v * Bp + l0;
        const int32_t *lv = m->live + l0;
        float *gr = dg + v * Bp + l0, *gz = gr + N * Bp, *gn = gz + N * Bp, *o = prev + v * Bp + l0;
        float an[WIDE * VEC];
        IVDEP
        LANES_OF(nc) {
            float r = s0[l], z = s1[l], n = s2[l], live = lv[l] ? 1.0f : 0.0f;
            float a = dv[l] * live * (1.0f - z) * (1.0f - n * n);
            an[l] = a;
            gr[l] = a * s3[l] * r * (1.0f - r);
            gz[l] = dv[l] * live * (hp[l] - n) * z * (1.0f - z);
            gn[l] = a * r;
            o[l] = dv[l] * (live * z + (1.0f - live));
        }
        add_outside(nc, ev, o);
        const float *rows[3] = {gr, gz, an};
        input_grads(m, &bs, dx, 3, v, l0, nc, rows);
        add_lanes(nc, gr, db + v * VEC);
        add_lanes(nc, gz, db + (N + v) * VEC);
        add_lanes(nc, gn, db + (2 * N + v) * VEC);
    }
}

/* The products over every unit's edges for a chunk of nc <= CH vectors (dg: G rows of N). */
INLINE void back_edges(const step_in *m, int G, int nc, int64_t l0, const float *h, const float *dg, float *prev,
                       float *wacc) {
    for (int64_t v = 0; v < m->n; v++)
        edge_grads(m, G, nc, v, h, l0, dg + v * m->Bp + l0, m->N * m->Bp, prev, wacc);
}

/* Model p's GRU backward, last step first. d ([N, Bp]) holds the gradient reaching h_T; each
 * step's d (reaching h_{t+1}) gives prev (reaching h_t: through z h_t, the graph's products, a
 * held lane's d, plus e's row t - 1 from outside, e [T, N, Bp] or NULL), which is the next
 * step's d (the two buffers swap; their ends are scratch). Summed over the steps: the input's
 * gradient (a table's: dx [P, 3N, VEC]; else each step's, dx + t * x_ts), b_hh's (db [P, 3N])
 * and the weights' (dw [P, 3N, N]). dg ([3N, Bp]) is scratch; h ([T + 1, N, Bp]), s
 * ([T, 4N, Bp]): its forward's. */
static void gru_model_backward(SEQ_ARGS, int64_t p, float *d, float *prev, const float *e, const float *s,
                               const float *h, float *dx, int64_t dx_ps, float *dg, float *db, float *dw) {
    scratch_t sc = SCRATCH(3, 1);
    const float *wv = sc.wv;
    for (int64_t t = T - 1; t >= 0; t--) {
        step_in m = MODEL;
        const float *ep = OUTSIDE, *hp = h + t * N * Bp, *sp = s + t * 4 * N * Bp;
        float *dxp = DX;
#define GRU_BW(nc, l0) gru_back_units(&m, nc, l0, d, ep, sp, hp, dxp, dg, sc.db, prev, N)
#define GRU_EDGES(nc, l0) back_edges(&m, 3, nc, l0, hp, dg, prev, sc.wacc)
        CHUNKS_OF(WIDE, nvs[t], GRU_BW)
        CHUNKS(nvs[t], GRU_EDGES)
        hold(N, Bp, nvs[t] * VEC, d, ep, prev);
        SWAP(d, prev);
    }
    GRADS(3, db + p * 3 * N);
}

/* The GRU's backward over a pack (model p's above, on its rows of d, prev [P, N, Bp], e
 * [P, T, N, Bp] (models e_ps apart) or NULL, dg [P, 3N, Bp], h, s: the forward's). */
void gru_backward(SEQ_ARGS, float *d, float *prev, const float *e, int64_t e_ps, const float *s, int64_t s_ps,
                  const float *h, int64_t h_ps, float *dx, int64_t dx_ps, float *dg, float *db, float *dw) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++)
        gru_model_backward(SEQ, p, d + p * N * Bp, prev + p * N * Bp, e ? e + p * e_ps : NULL, s + p * s_ps,
                           h + p * h_ps, dx, dx_ps, dg + p * 3 * N * Bp, db, dw);
}

/* A training step of the GRU: model by model, its forward, its loss (train_head) and its
 * backward, so that the rows the backward reads are still in cache (each thread's work
 * buffer, train_floats); nothing is streamed to memory. The loss and gradients of each model
 * go to loss, dwr, dbo (HEAD_ARGS) and dx, db, dw as gru_backward's. */
void gru_train(SEQ_ARGS, const float *bias, HEAD_ARGS, float *dx, int64_t dx_ps, float *db, float *dw) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++) {
        model_work k = carve(work + THREAD * work_ps, T, N, Bp, 3, 4, 0);
        gru_model_forward(SEQ, p, bias, k.h, T + 1, 0, 0, k.s, 0);
        loss[p] = HEAD(k);
        gru_model_backward(SEQ, p, k.d, k.prev, NULL, k.s, k.h, dx, dx_ps, k.dg, db, dw);
    }
}

/* ---- LSTM (torch's gates i, f, g, o; both biases in the input's rows), c the cell state
 * (laid out as h): saves sigmoid(i), sigmoid(f), tanh(g), sigmoid(o), tanh(c') per unit (where s
 * is not NULL). */
INLINE void lstm_chunk(const step_in *m, int nc, int64_t l0, const float *h, float *hn, const float *c, float *cn,
                       float *s, int64_t N, float *kh, float *kc, int nt) {
    vi ix[CH];
    by_symbol bs;  /* values alone: the forward picks symbols by ix */
    symbols(m, l0, nc, ix, m->val ? &bs : NULL);
    for (int64_t v = 0; v < m->n; v++) {
        vf acc[4][CH];
        float pre[4][CH * VEC];
        edge_sums(m, 4, nc, v, h, l0, acc);
        for (int g = 0; g < 4; g++)
            for (int i = 0; i < nc; i++)
                *(vfu *)(pre[g] + i * VEC) = input_at(m, ix, &bs, g * N + v, l0, i) + acc[g][i];
        int64_t at = v * m->Bp + l0, row = N * m->Bp;
        const float *hp = h + at, *cp = c + at;
        const int32_t *lv = m->live + l0;
        float *ho = hn + at, *co = cn + at, tcs[CH * VEC];
        IVDEP
        LANES_OF(nc) {
            float i = sigmoid_f(pre[0][l]), f = sigmoid_f(pre[1][l]), g = tanh_f(pre[2][l]);
            float o = sigmoid_f(pre[3][l]);
            float cc = f * cp[l] + i * g, tc = tanh_f(cc);
            co[l] = lv[l] ? cc : cp[l];
            ho[l] = lv[l] ? o * tc : hp[l];
            pre[0][l] = i;
            pre[1][l] = f;
            pre[2][l] = g;
            pre[3][l] = o;
            tcs[l] = tc;
        }
        if (kh != NULL) {
            save(kh + at, ho, nc, 1);
            save(kc + at, co, nc, 1);
        }
        for (int g = 0; g < 4 && s != NULL; g++)
            save(s + at + g * row, pre[g], nc, nt);
        if (s != NULL)
            save(s + at + 4 * row, tcs, nc, nt);
    }
}

/* Model p's LSTM forward: h, c its states [ring, N, Bp] (h_0, c_0 given; ring, every, streamed:
 * see gru_model_forward), s its saved rows [T, 5N, Bp] or NULL (nt: see save). */
static void lstm_model_forward(SEQ_ARGS, int64_t p, float *h, float *c, int64_t ring, int64_t every,
                               int64_t streamed, float *s, int nt) {
    const float *wv = SCRATCH(4, 0).wv;
    float *work = working_ring(streamed, N, Bp, 2);
    for (int64_t t = 0; t < T; t++) {
        step_in m = MODEL;
        int64_t at = t % ring * N * Bp, next = (t + 1) % ring * N * Bp;
        float *hp = h + at, *cp = c + at, *ho = h + next, *co = c + next, *kh = NULL, *kc = NULL;
        WORKING(hp, ho, kh, 0);
        WORKING(cp, co, kc, 1);
        float *sp = s ? s + t * 5 * N * Bp : NULL;
#define LSTM_FW(nc, l0) lstm_chunk(&m, nc, l0, hp, ho, cp, co, sp, N, kh, kc, nt)
        CHUNKS(nvs[t], LSTM_FW)
        HELD(hp, ho);
        HELD(cp, co);
    }
    free(work);
    fence();
    if (!every)
        final_states(T, ring, N, sizes[p], Bp, nvs, h);  /* c is not read out */
}

/* The LSTM over a pack's sequence: h, c the states [P, ring, N, Bp], s the saved rows
 * [P, T, 5N, Bp] or NULL (model p's forward above, its rows streamed to memory). */
void lstm_forward(SEQ_ARGS, float *h, float *c, int64_t h_ps, int64_t ring, int64_t every, int64_t streamed,
                  float *s, int64_t s_ps) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++)
        lstm_model_forward(SEQ, p, h + p * h_ps, c + p * h_ps, ring, every, streamed, s ? s + p * s_ps : NULL, 1);
}

INLINE void lstm_back_units(const step_in *m, int nc, int64_t l0, const float *d, const float *dc, const float *e,
                            const float *s, const float *c, float *dx, float *dg, float *prev, float *cprev,
                            int64_t N) {
    vi ix[WIDE];
    int64_t Bp = m->Bp, row = N * Bp;
    by_symbol bs;
    symbols(m, l0, nc, ix, &bs);
    for (int64_t v = 0; v < m->n; v++) {
        int64_t at = v * Bp + l0;
        const float *dv = d + at, *dcv = dc + at, *sv = s + at, *cp = c + at, *ev = e == NULL ? NULL : e + at;
        const int32_t *lv = m->live + l0;
        float *g = dg + at, *o = prev + at, *oc = cprev + at;
        IVDEP
        LANES_OF(nc) {
            float i = sv[l], f = sv[row + l], gg = sv[2 * row + l], og = sv[3 * row + l], tc = sv[4 * row + l];
            float live = lv[l] ? 1.0f : 0.0f;
            float dct = dcv[l] + dv[l] * og * (1.0f - tc * tc);
            float dl = dct * live;
            g[l] = dl * gg * i * (1.0f - i);
            g[row + l] = dl * cp[l] * f * (1.0f - f);
            g[2 * row + l] = dl * i * (1.0f - gg * gg);
            g[3 * row + l] = dv[l] * live * tc * og * (1.0f - og);
            oc[l] = live * dct * f + (1.0f - live) * dcv[l];
            o[l] = (1.0f - live) * dv[l];
        }
        add_outside(nc, ev, o);
        const float *rows[4] = {g, g + row, g + 2 * row, g + 3 * row};
        input_grads(m, &bs, dx, 4, v, l0, nc, rows);
    }
}

/* Model p's LSTM backward, last step first: d, dc (reaching h_T, c_T in; [N, Bp]) give prev,
 * cprev (reaching h_t, c_t), swapped after each step as the GRU's d and prev; e, dx, dw, dg
 * as the GRU's (dg [4N, Bp]); h, c ([T + 1, N, Bp]), s ([T, 5N, Bp]): its forward's. */
static void lstm_model_backward(SEQ_ARGS, int64_t p, float *d, float *dc, float *prev, float *cprev, const float *e,
                                const float *s, const float *c, const float *h, float *dx, int64_t dx_ps, float *dg,
                                float *dw) {
    scratch_t sc = SCRATCH(4, 1);
    const float *wv = sc.wv;
    for (int64_t t = T - 1; t >= 0; t--) {
        step_in m = MODEL;
        const float *ep = OUTSIDE, *sp = s + t * 5 * N * Bp, *ct = c + t * N * Bp, *ht = h + t * N * Bp;
        float *dxp = DX;
#define LSTM_BW(nc, l0) lstm_back_units(&m, nc, l0, d, dc, ep, sp, ct, dxp, dg, prev, cprev, N)
#define LSTM_EDGES(nc, l0) back_edges(&m, 4, nc, l0, ht, dg, prev, sc.wacc)
        CHUNKS_OF(WIDE, nvs[t], LSTM_BW)
        CHUNKS(nvs[t], LSTM_EDGES)
        hold(N, Bp, nvs[t] * VEC, d, ep, prev);
        hold(N, Bp, nvs[t] * VEC, dc, NULL, cprev);
        SWAP(d, prev);
        SWAP(dc, cprev);
    }
    GRADS(4, NULL);
}

/* The LSTM's backward over a pack (model p's above, on its rows of d, dc, prev, cprev
 * [P, N, Bp], e, dg [P, 4N, Bp]; h, c, s: the forward's). */
void lstm_backward(SEQ_ARGS, float *d, float *dc, float *prev, float *cprev, const float *e, int64_t e_ps,
                   const float *s, int64_t s_ps, const float *c, const float *h, int64_t h_ps, float *dx,
                   int64_t dx_ps, float *dg, float *dw) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++) {
        int64_t at = p * N * Bp;
        lstm_model_backward(SEQ, p, d + at, dc + at, prev + at, cprev + at, e ? e + p * e_ps : NULL, s + p * s_ps,
                            c + p * h_ps, h + p * h_ps, dx, dx_ps, dg + 4 * at, dw);
    }
}

/* A training step of the LSTM, model by model (see gru_train). */
void lstm_train(SEQ_ARGS, HEAD_ARGS, float *dx, int64_t dx_ps, float *dw) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++) {
        model_work k = carve(work + THREAD * work_ps, T, N, Bp, 4, 5, 1);
        lstm_model_forward(SEQ, p, k.h, k.c, T + 1, 0, 0, k.s, 0);
        loss[p] = HEAD(k);
        lstm_model_backward(SEQ, p, k.d, k.dc, k.prev, k.cprev, NULL, k.s, k.c, k.h, dx, dx_ps, k.dg, dw);
    }
}

/* ---- One activation of the summed pre-activation (rnn-tanh: which 0, rnn-relu: which 1). */
INLINE void act_chunk(const step_in *m, int nc, int64_t l0, int64_t which, const float *h, float *hn, int64_t N,
                      float *kept) {
    vi ix[CH];
    by_symbol bs;  /* values alone: the forward picks symbols by ix */
    symbols(m, l0, nc, ix, m->val ? &bs : NULL);
    for (int64_t v = 0; v < m->n; v++) {
        vf acc[4][CH];
        float pre[CH * VEC];
        edge_sums(m, 1, nc, v, h, l0, acc);
        for (int i = 0; i < nc; i++)
            *(vfu *)(pre + i * VEC) = input_at(m, ix, &bs, v, l0, i) + acc[0][i];
        const float *hp = h + v * m->Bp + l0;
        const int32_t *lv = m->live + l0;
        float *ho = hn + v * m->Bp + l0;
        if (which == 0) {
            IVDEP
            LANES_OF(nc) ho[l] = lv[l] ? tanh_f(pre[l]) : hp[l];
        } else {
            IVDEP
            LANES_OF(nc) ho[l] = lv[l] ? (pre[l] > 0.0f ? pre[l] : 0.0f) : hp[l];
        }
        if (kept != NULL)
            save(kept + v * m->Bp + l0, ho, nc, 1);
    }
}

/* Model p's forward: h its states [ring, N, Bp], h_0 given (ring, every, streamed: see
 * gru_model_forward). */
static void act_model_forward(SEQ_ARGS, int64_t p, int64_t which, float *h, int64_t ring, int64_t every,
                              int64_t streamed) {
    const float *wv = SCRATCH(1, 0).wv;
    float *work = working_ring(streamed, N, Bp, 1);
    for (int64_t t = 0; t < T; t++) {
        step_in m = MODEL;
        float *hp = h + t % ring * N * Bp, *ho = h + (t + 1) % ring * N * Bp, *kept = NULL;
        WORKING(hp, ho, kept, 0);
#define ACT_FW(nc, l0) act_chunk(&m, nc, l0, which, hp, ho, N, kept)
        CHUNKS(nvs[t], ACT_FW)
        HELD(hp, ho);
    }
    free(work);
    fence();
    if (!every)
        final_states(T, ring, N, sizes[p], Bp, nvs, h);
}

/* Over a pack's sequence: h the states [P, ring, N, Bp] (model p's forward above). */
void act_forward(SEQ_ARGS, int64_t which, float *h, int64_t h_ps, int64_t ring, int64_t every, int64_t streamed) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++)
        act_model_forward(SEQ, p, which, h + p * h_ps, ring, every, streamed);
}

INLINE void act_back_units(const step_in *m, int nc, int64_t l0, int64_t which, const float *d, const float *e,
                           const float *y, float *dx, float *dg, float *prev) {
    vi ix[WIDE];
    int64_t Bp = m->Bp;
    by_symbol bs;
    symbols(m, l0, nc, ix, &bs);
    for (int64_t v = 0; v < m->n; v++) {
        int64_t at = v * Bp + l0;
        const float *dv = d + at, *yv = y + at, *ev = e == NULL ? NULL : e + at;
        const int32_t *lv = m->live + l0;
        float *g = dg + at, *o = prev + at;
        IVDEP
        LANES_OF(nc) {
            float slope = which == 0 ? 1.0f - yv[l] * yv[l] : (yv[l] > 0.0f ? 1.0f : 0.0f);
            float live = lv[l] ? 1.0f : 0.0f;
            g[l] = live * dv[l] * slope;
            o[l] = (1.0f - live) * dv[l];
        }
        add_outside(nc, ev, o);
        const float *rows[1] = {g};
        input_grads(m, &bs, dx, 1, v, l0, nc, rows);
    }
}

/* Model p's backward, last step first: as the GRU's (dg [N, Bp]; h [T + 1, N, Bp]: its
 * forward's states). */
static void act_model_backward(SEQ_ARGS, int64_t p, int64_t which, float *d, float *prev, const float *e,
                               const float *h, float *dx, int64_t dx_ps, float *dg, float *dw) {
    scratch_t sc = SCRATCH(1, 1);
    const float *wv = sc.wv;
    for (int64_t t = T - 1; t >= 0; t--) {
        step_in m = MODEL;
        const float *ep = OUTSIDE, *hp = h + t * N * Bp;
        float *dxp = DX;
#define ACT_BW(nc, l0) act_back_units(&m, nc, l0, which, d, ep, hp + N * Bp, dxp, dg, prev)
#define ACT_EDGES(nc, l0) back_edges(&m, 1, nc, l0, hp, dg, prev, sc.wacc)
        CHUNKS_OF(WIDE, nvs[t], ACT_BW)
        CHUNKS(nvs[t], ACT_EDGES)
        hold(N, Bp, nvs[t] * VEC, d, ep, prev);
        SWAP(d, prev);
    }
    GRADS(1, NULL);
}

/* Its backward over a pack (model p's above, on its rows of d, prev, dg [P, N, Bp], e). */
void act_backward(SEQ_ARGS, int64_t which, float *d, float *prev, const float *e, int64_t e_ps, const float *h,
                  int64_t h_ps, float *dx, int64_t dx_ps, float *dg, float *dw) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++) {
        int64_t at = p * N * Bp;
        act_model_backward(SEQ, p, which, d + at, prev + at, e ? e + p * e_ps : NULL, h + p * h_ps, dx, dx_ps,
                           dg + at, dw);
    }
}

/* A training step of the activation's cell, model by model (see gru_train). */
void act_train(SEQ_ARGS, int64_t which, HEAD_ARGS, float *dx, int64_t dx_ps, float *dw) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++) {
        model_work k = carve(work + THREAD * work_ps, T, N, Bp, 1, 0, 0);
        act_model_forward(SEQ, p, which, k.h, T + 1, 0, 0);
        loss[p] = HEAD(k);
        act_model_backward(SEQ, p, which, k.d, k.prev, NULL, k.h, dx, dx_ps, k.dg, dw);
    }
}

/* The library's vector width in floats: the lanes a row is padded to, and the most table rows
 * (symbols) a cell picks from per lane. */
void vector_floats(int64_t *out) { *out = VEC; }

/* ---- Block-sparse products: a layer masked by a block structure (graph2nn's relational
 * layer, (A + I) (x) 1), computing only its blocks (topowire/compiler/blocks.py drives them).
 *
 * A plan lists Q output nodes (over the P models of a pack): node q is model nodes[3q]'s
 * output channels [nodes[3q+1], + nodes[3q+2]), and it reads the input channels of the
 * segments seg_ptr[q] .. seg_ptr[q+1] of segs ([start, length] pairs). Each node's block is
 * one small dense product: its inputs gathered into a scratch panel, its weights packed
 * transposed, multiplied by a register-tiled kernel written with GCC's vector extensions.
 */

static int64_t round_up(int64_t x, int64_t to) { return (x + to - 1) / to * to; }

/* C[ROWS, :valid] = sum_k A(r, k) Bm[k, :], nv = 1 or 2 vectors of columns (valid <= nv * VEC),
 * over the columns k of A's segments: A(r, k) = a[r * ars + j * acs] for j in [start, + length)
 * of segs[0 .. nseg), Bm's rows in the same order. */
static inline __attribute__((always_inline)) void tile(int nv, int64_t nseg, const int64_t *segs, const float *a,
                                                       int64_t ars, int64_t acs, const float *bm, int64_t ldb,
                                                       float *c, int64_t ldc, int64_t valid) {
    vf acc[ROWS][2];
    for (int r = 0; r < ROWS; r++)
        acc[r][0] = acc[r][1] = (vf){0};
    for (int64_t s = 0; s < nseg; s++) {
        const float *as = a + segs[2 * s] * acs;
        for (int64_t k = 0; k < segs[2 * s + 1]; k++, bm += ldb) {
            const float *ak = as + k * acs;
            vf b0 = *(const vfu *)bm;
            vf b1 = nv > 1 ? *(const vfu *)(bm + VEC) : b0;
            for (int r = 0; r < ROWS; r++) {
                float x = ak[r * ars];
                acc[r][0] += x * b0;
                if (nv > 1)
                    acc[r][1] += x * b1;
            }
        }
    }
    for (int r = 0; r < ROWS; r++) {
        float *cr = c + r * ldc;
        if (valid == nv * VEC) {
            *(vfu *)cr = acc[r][0];
            if (nv > 1)
                *(vfu *)(cr + VEC) = acc[r][1];
        } else {
            for (int64_t j = 0; j < valid; j++)
                cr[j] = j < VEC ? acc[r][0][j] : acc[r][1][j - VEC];
        }
    }
}

/* C[M, :cols] = A @ Bm (see tile), M >= ROWS: the last row tile is moved back to end at row M
 * (rows computed twice are written twice with the same values). Bm has round_up(cols, VEC)
 * columns. */
static void small_gemm(int64_t M, int64_t cols, int64_t nseg, const int64_t *segs, const float *a, int64_t ars,
                       int64_t acs, const float *bm, int64_t ldb, float *c, int64_t ldc) {
    for (int64_t j = 0; j < cols; j += 2 * VEC)
        for (int64_t r0 = 0; r0 < M; r0 += ROWS) {
            int64_t r = r0 + ROWS <= M ? r0 : M - ROWS, left = cols - j;
            if (left > VEC)
                tile(2, nseg, segs, a + r * ars, ars, acs, bm + j, ldb, c + r * ldc + j, ldc,
                     left < 2 * VEC ? left : 2 * VEC);
            else
                tile(1, nseg, segs, a + r * ars, ars, acs, bm + j, ldb, c + r * ldc + j, ldc, left);
        }
}

/* Node q's block of a layer packed transposed: wt[k, o] = w(o0 + o, j_k) for its input
 * channels j_k, zero for o in [co, c). The weight at (o, j) is w[o * rs + j * cs]: the loops
 * run along whichever of o and j is contiguous. */
static void pack_weights(const float *w, int64_t rs, int64_t cs, int64_t o0, int64_t co,
                            const int64_t *segs, int64_t nseg, float *wt, int64_t c) {
    int64_t K = 0;
    for (int64_t s = 0; s < nseg; s++)
        K += segs[2 * s + 1];
    memset(wt, 0, K * c * sizeof(float));
    for (int64_t s = 0, kk = 0; s < nseg; kk += segs[2 * s + 1], s++) {
        const float *ws = w + segs[2 * s] * cs + o0 * rs;
        if (cs == 1) {
            for (int64_t o = 0; o < co; o++)
                for (int64_t j = 0; j < segs[2 * s + 1]; j++)
                    wt[(kk + j) * c + o] = ws[o * rs + j];
        } else {
            for (int64_t j = 0; j < segs[2 * s + 1]; j++)
                for (int64_t o = 0; o < co; o++)
                    wt[(kk + j) * c + o] = ws[j * cs + o * rs];
        }
    }
}

/* The arguments of a block kernel, shared by the threads that split its nodes. */
typedef struct block_args block_args;
struct block_args {
    int64_t P, Q, B, Wi, Wo, kmax, cmax, wps, wrs, wcs;
    const int64_t *nodes, *seg_ptr, *segs;
    const float *x, *w;  /* w: the weights (block_forward) or dy (block_weight_grad) */
    float *out;
    void (*range)(const block_args *, int64_t, int64_t);  /* computes nodes [q0, q1) */
};

/* a->range over nodes [0, a->Q) in `threads` contiguous parts, run in the OpenMP pool that
 * torch's own parallel ops use (the library links the libgomp torch has loaded): threads of
 * their own would compete for the cores with that pool's workers, which spin a while after
 * each of torch's parallel regions. Nodes write disjoint outputs, so the result does not
 * depend on the thread count; built without OpenMP, the parts run one after another. */
static void block_parallel(const block_args *a, int64_t threads) {
    int64_t Q = a->Q;
    threads = threads < 1 || threads > Q ? 1 : threads;
#ifdef _OPENMP
#pragma omp parallel for num_threads(threads) schedule(static, 1) if (threads > 1)
#endif
    for (int64_t t = 0; t < threads; t++)
        a->range(a, Q * t / threads, Q * (t + 1) / threads);
}

static void forward_range(const block_args *a, int64_t q0, int64_t q1) {
    int64_t B = a->B, Wi = a->Wi, Wo = a->Wo, cp = round_up(a->cmax, VEC);
    float *wt = malloc(a->kmax * cp * sizeof(float) + 1);
    for (int64_t q = q0; q < q1; q++) {
        int64_t p = a->nodes[3 * q], o0 = a->nodes[3 * q + 1], co = a->nodes[3 * q + 2], c = round_up(co, VEC);
        int64_t nseg = a->seg_ptr[q + 1] - a->seg_ptr[q];
        const int64_t *sq = a->segs + 2 * a->seg_ptr[q];
        const float *xp = a->x + p * B * Wi;
        float *yp = a->out + p * B * Wo + o0;
        pack_weights(a->w + p * a->wps, a->wrs, a->wcs, o0, co, sq, nseg, wt, c);
        if (B >= ROWS) {
            small_gemm(B, co, nseg, sq, xp, Wi, 1, wt, c, yp, Wo);
            continue;
        }
        for (int64_t b = 0; b < B; b++)
            for (int64_t s = 0, kk = 0; s < nseg; s++)
                for (int64_t j = sq[2 * s]; j < sq[2 * s] + sq[2 * s + 1]; j++, kk++)
                    for (int64_t o = 0; o < co; o++)
                        yp[b * Wo + o] += xp[b * Wi + j] * wt[kk * c + o];
    }
    free(wt);
}

/* y[p, b, o] = sum_j x[p, b, j] w[p](o, j) over the plan's blocks (weights outside them are
 * not read), y [P, B, Wo] zeroed by the caller, x [P, B, Wi]. The weight of model p at (o, j)
 * is w[p * wps + o * wrs + j * wcs]: the transposed layer (the input gradient) is the same
 * call. x is read in place; a batch smaller than ROWS runs a plain loop. */
void block_forward(int64_t threads, int64_t Q, int64_t B, int64_t Wi, int64_t Wo, const int64_t *nodes,
                   const int64_t *seg_ptr, const int64_t *segs, int64_t kmax, int64_t cmax, const float *x,
                   const float *w, int64_t wps, int64_t wrs, int64_t wcs, float *y) {
    block_args a = {0, Q, B, Wi, Wo, kmax, cmax, wps, wrs, wcs, nodes, seg_ptr, segs, x, w, y, forward_range};
    block_parallel(&a, threads);
}

/* The first row (of all models' P * Wo) that node q writes; P * Wo past the last node. */
static int64_t node_row(const block_args *a, int64_t q) {
    return q == a->Q ? a->P * a->Wo : q == 0 ? 0 : a->nodes[3 * q] * a->Wo + a->nodes[3 * q + 1];
}

static void weight_grad_range(const block_args *a, int64_t q0, int64_t q1) {
    int64_t B = a->B, Wi = a->Wi, Wo = a->Wo, kp = round_up(a->kmax, ROWS), cp = round_up(a->cmax, VEC);
    int64_t all[2] = {0, B}, row = node_row(a, q0), end = node_row(a, q1);
    float *panel = calloc(B * kp + B * cp + kp * cp, sizeof(float));
    float *g = panel + B * kp, *out = g + B * cp, *dw = a->out;
    for (int64_t q = q0; q < q1; q++) {
        int64_t p = a->nodes[3 * q], o0 = a->nodes[3 * q + 1], co = a->nodes[3 * q + 2], c = round_up(co, VEC);
        int64_t nseg = a->seg_ptr[q + 1] - a->seg_ptr[q], K = 0, next = p * Wo + o0 + co;
        const int64_t *sq = a->segs + 2 * a->seg_ptr[q];
        memset(dw + row * Wi, 0, (next - row) * Wi * sizeof(float));  /* zeroed while in cache */
        row = next;
        for (int64_t s = 0; s < nseg; K += sq[2 * s + 1], s++)
            for (int64_t b = 0; b < B; b++)
                memcpy(panel + b * kp + K, a->x + (p * B + b) * Wi + sq[2 * s], sq[2 * s + 1] * sizeof(float));
        for (int64_t b = 0; b < B; b++) {
            memcpy(g + b * c, a->w + (p * B + b) * Wo + o0, co * sizeof(float));
            memset(g + b * c + co, 0, (c - co) * sizeof(float));
        }
        small_gemm(round_up(K, ROWS), c, 1, all, panel, 1, kp, g, c, out, c);
        for (int64_t o = 0; o < co; o++)
            for (int64_t s = 0, kk = 0; s < nseg; kk += sq[2 * s + 1], s++) {
                int64_t at = (p * Wo + o0 + o) * Wi + sq[2 * s];
                for (int64_t j = 0; j < sq[2 * s + 1]; j++)
                    dw[at + j] = out[(kk + j) * c + o];
            }
    }
    memset(dw + row * Wi, 0, (end - row) * Wi * sizeof(float));
    free(panel);
}

/* dw[p](o, j) = sum_b dy[p, b, o] x[p, b, j] over the plan's blocks, zero elsewhere (dw
 * [P, Wo, Wi] contiguous, every entry written; the plan's nodes ordered by model and row, so
 * each row is zeroed just before its blocks are written, and the threads' rows are
 * disjoint). Per node, its inputs are gathered into a panel [B, kp] and dy's block copied
 * into [B, c], multiplied as (panel^T) @ dy. */
void block_weight_grad(int64_t threads, int64_t P, int64_t Q, int64_t B, int64_t Wi, int64_t Wo,
                       const int64_t *nodes, const int64_t *seg_ptr, const int64_t *segs, int64_t kmax,
                       int64_t cmax, const float *x, const float *dy, float *dw) {
    block_args a = {P, Q, B, Wi, Wo, kmax, cmax, 0, 0, 0, nodes, seg_ptr, segs, x, dy, dw, weight_grad_range};
    block_parallel(&a, threads);
}
