/* The gate arithmetic of one time step of a packed recurrent cell, fused: one pass over a
 * step's rows instead of one pass per torch operation (topowire/compiler/sequence.py drives
 * them; the recurrent products stay torch's GEMMs).
 *
 * A step's tensors are P blocks of B rows of width W (W = N or G*N, float32); the rows of a
 * block are contiguous, block p starts at base + p * ps (ps: its stride in floats), so a
 * step of a [P, T, B, W] buffer is passed as base + t * B * W with ps = T * B * W.
 *
 * lengths (int64 [B], or NULL: every sequence real to the end): a sequence stops updating
 * at its end -- its state is held and no gradient reaches its gates.
 *
 * exp, sigmoid and tanh are written out (Cephes' single-precision polynomials, a few ulp)
 * so that the compiler vectorizes the loops (built with -fno-math-errno -fno-trapping-math, so
 * floorf is an instruction; no -ffast-math). Built with -ffp-contract=fast: a * b + c is one
 * FMA, in the polynomials (a third less time for a GRU step's forward) and the products.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

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

static inline float tanh_f(float x) {
    float a = fabsf(x);
    float z = x * x;
    float small = ((((-5.70498872745e-3f * z + 2.06390887954e-2f) * z - 5.37397155531e-2f) * z
                    + 1.33314422036e-1f) * z - 3.33332819422e-1f) * z * x + x;
    float big = 1.0f - 2.0f / (exp_f(2.0f * a) + 1.0f);
    big = copysignf(big, x);
    return a < 0.625f ? small : big;
}

static inline int alive(const int64_t *lengths, int64_t t, int64_t b) { return lengths == NULL || t < lengths[b]; }

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

/* A row of N units runs as whole vectors, units [j, j + VEC) for j = 0, VEC, ..., the last
 * one moved back to end at N: the compiler's epilogue for a width that is not a multiple of
 * VEC runs its last units one at a time (at N = 53 the 5 last took as long as the 48 before
 * them). The moved vector's first `skip` units were done already: a kernel writes them again
 * with the same values and adds nothing more into what it accumulates (FRESH). A row narrower
 * than one vector runs unit by unit. lanes(j0, count, skip, N, ...) is a kernel's arithmetic
 * over units [j0, j0 + count) of its row. */
#define ROW(N, lanes, ...)                                                      \
    do {                                                                        \
        if ((N) < VEC)                                                          \
            lanes(0, (N), 0, (N), __VA_ARGS__);                                 \
        else                                                                    \
            for (int64_t j_ = 0; j_ < (N); j_ += VEC)                           \
                if (j_ + VEC <= (N))                                            \
                    lanes(j_, VEC, 0, (N), __VA_ARGS__);                        \
                else                                                            \
                    lanes((N) - VEC, VEC, j_ - ((N) - VEC), (N), __VA_ARGS__);  \
    } while (0)
#define LANES static inline __attribute__((always_inline)) void

/* A cell kernel's models split over `threads` threads of the OpenMP pool torch's own ops use
 * (see block_parallel below): each model's rows, and the rows of dx and db it adds into, are
 * its own, so the result does not depend on the thread count. */
#ifdef _OPENMP
#define OVER_MODELS _Pragma("omp parallel for num_threads(threads) schedule(static) if (threads > 1 && P > 1)")
#else
#define OVER_MODELS (void)threads;
#endif
#define FRESH(l, skip, x) ((l) >= (skip) ? (x) : 0.0f)

/* The backward of a row whose sequence has ended (its state held): no gradient reaches its
 * `width` gate pre-activations, and h_{t-1} gets h_t's gradient d plus e (from outside, or NULL). */
static void held_backward(int64_t N, int64_t width, const float *d, const float *e, float *gates, float *o) {
    memset(gates, 0, width * sizeof(float));
    IVDEP
    for (int64_t j = 0; j < N; j++)
        o[j] = d[j] + (e == NULL ? 0.0f : e[j]);
}

/* Element-wise tanh/relu/sigmoid of a float array (the tests compare them with torch's). */
void unary_f(int64_t count, int64_t which, const float *x, float *y) {
    for (int64_t i = 0; i < count; i++)
        y[i] = which == 0 ? exp_f(x[i]) : which == 1 ? sigmoid_f(x[i]) : tanh_f(x[i]);
}

/* Every kernel reads the input's gate pre-activations of row (p, b) at this step from
 * x + p * x_ps + xrow[b] * G*N: a table of rows, xrow the step's B row indices (one-hot
 * inputs: the symbols, into the table W_ih.T + b_ih; other inputs: every step's rows).
 * The backward adds the rows' gradients into dx the same way (dx zeroed by the caller). */

LANES gru_forward_lanes(int64_t j0, int64_t count, int64_t skip, int64_t N, const float *gx, const float *g,
                        const float *bh, const float *hp, float *ho, float *sv) {
    (void)skip;
    IVDEP
    for (int64_t l = 0; l < count; l++) {
        int64_t j = j0 + l;
        float hn = g[2 * N + j] + bh[2 * N + j];
        float r = sigmoid_f(gx[j] + (g[j] + bh[j]));
        float z = sigmoid_f(gx[N + j] + (g[N + j] + bh[N + j]));
        float n = tanh_f(gx[2 * N + j] + r * hn);
        ho[j] = (1.0f - z) * n + z * hp[j];
        sv[j] = r;
        sv[N + j] = z;
        sv[2 * N + j] = n;
        sv[3 * N + j] = hn;
    }
}

/* GRU (torch's gates r, z, n): gx from x and gh = W_hh h, [.., 3N] each, plus b_hh (bias,
 * [P, 3N]: added here, where a product with a broadcast bias would first copy it into its
 * output). Saves r, z, n and gh's n part (with its bias) per row (s, width 4N). */
void gru_forward(int64_t threads, int64_t P, int64_t B, int64_t N, int64_t t, const int64_t *lengths,
                 const float *x, int64_t x_ps, const int64_t *xrow, const float *gh, int64_t gh_ps,
                 const float *bias, const float *h, float *hn, int64_t h_ps, float *s, int64_t s_ps) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++)
        for (int64_t b = 0; b < B; b++) {
            const float *gx = x + p * x_ps + xrow[b] * 3 * N, *g = gh + p * gh_ps + b * 3 * N;
            const float *hp = h + p * h_ps + b * N, *bh = bias + p * 3 * N;
            float *ho = hn + p * h_ps + b * N, *sv = s + p * s_ps + b * 4 * N;
            if (alive(lengths, t, b))
                ROW(N, gru_forward_lanes, gx, g, bh, hp, ho, sv);
            else
                memcpy(ho, hp, N * sizeof(float));
        }
}

LANES gru_backward_lanes(int64_t j0, int64_t count, int64_t skip, int64_t N, const float *d, const float *e,
                         const float *sv, const float *hp, float *gx, float *gh, float *gb, float *o) {
    IVDEP
    for (int64_t l = 0; l < count; l++) {
        int64_t j = j0 + l;
        float r = sv[j], z = sv[N + j], n = sv[2 * N + j], hn = sv[3 * N + j];
        float an = d[j] * (1.0f - z) * (1.0f - n * n);
        float ar = an * hn * r * (1.0f - r);
        float az = d[j] * (hp[j] - n) * z * (1.0f - z);
        gh[j] = ar;
        gh[N + j] = az;
        gh[2 * N + j] = an * r;
        gx[j] += FRESH(l, skip, ar);
        gx[N + j] += FRESH(l, skip, az);
        gx[2 * N + j] += FRESH(l, skip, an);
        gb[j] += FRESH(l, skip, ar);
        gb[N + j] += FRESH(l, skip, az);
        gb[2 * N + j] += FRESH(l, skip, an * r);
        o[j] = d[j] * z + (e == NULL ? 0.0f : e[j]);
    }
}

/* The GRU step's backward: dh (the gradient reaching h_t, [P, B, N] contiguous) -> dx (added),
 * dgh ([.., 3N]; added into db, [P, 3N], too: b_hh's gradient) and prev = the gradient
 * reaching h_{t-1} through the gates' z h term plus dprev (the gradient reaching h_{t-1}
 * from outside, or NULL); the caller adds dgh W_hh. */
void gru_backward(int64_t threads, int64_t P, int64_t B, int64_t N, int64_t t, const int64_t *lengths,
                  const float *dh, const float *s, int64_t s_ps, const float *h, int64_t h_ps,
                  const float *dprev, int64_t dprev_ps, float *dx, int64_t dx_ps, const int64_t *xrow,
                  float *dgh, int64_t dgh_ps, float *db, float *prev) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++)
        for (int64_t b = 0; b < B; b++) {
            const float *d = dh + (p * B + b) * N, *sv = s + p * s_ps + b * 4 * N, *hp = h + p * h_ps + b * N;
            const float *e = dprev == NULL ? NULL : dprev + p * dprev_ps + b * N;
            float *gx = dx + p * dx_ps + xrow[b] * 3 * N, *gh = dgh + p * dgh_ps + b * 3 * N;
            float *o = prev + (p * B + b) * N, *gb = db + p * 3 * N;
            if (alive(lengths, t, b))
                ROW(N, gru_backward_lanes, d, e, sv, hp, gx, gh, gb, o);
            else
                held_backward(N, 3 * N, d, e, gh, o);
        }
}

LANES tanh_lanes(int64_t j0, int64_t count, int64_t skip, int64_t N, const float *gx, const float *a, float *ho) {
    (void)skip, (void)N;
    IVDEP
    for (int64_t l = 0; l < count; l++)
        ho[j0 + l] = tanh_f(gx[j0 + l] + a[j0 + l]);
}

LANES relu_lanes(int64_t j0, int64_t count, int64_t skip, int64_t N, const float *gx, const float *a, float *ho) {
    (void)skip, (void)N;
    IVDEP
    for (int64_t l = 0; l < count; l++) {
        float v = gx[j0 + l] + a[j0 + l];
        ho[j0 + l] = v > 0.0f ? v : 0.0f;
    }
}

/* One activation of gx + gh (rnn-tanh: which 0, rnn-relu: which 1), [.., N]; gh = W_hh h. */
void act_forward(int64_t threads, int64_t P, int64_t B, int64_t N, int64_t t, const int64_t *lengths, int64_t which,
                 const float *x, int64_t x_ps, const int64_t *xrow, const float *gh, int64_t gh_ps,
                 const float *h, float *hn, int64_t h_ps) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++)
        for (int64_t b = 0; b < B; b++) {
            const float *gx = x + p * x_ps + xrow[b] * N, *a = gh + p * gh_ps + b * N, *hp = h + p * h_ps + b * N;
            float *ho = hn + p * h_ps + b * N;
            if (!alive(lengths, t, b))
                memcpy(ho, hp, N * sizeof(float));
            else if (which == 0)
                ROW(N, tanh_lanes, gx, a, ho);
            else
                ROW(N, relu_lanes, gx, a, ho);
        }
}

LANES act_backward_lanes(int64_t j0, int64_t count, int64_t skip, int64_t N, int64_t which, const float *d,
                         const float *y, const float *e, float *g, float *gx, float *o) {
    (void)N;
    IVDEP
    for (int64_t l = 0; l < count; l++) {
        int64_t j = j0 + l;
        float grad = which == 0 ? d[j] * (1.0f - y[j] * y[j]) : (y[j] > 0.0f ? d[j] : 0.0f);
        g[j] = grad;
        gx[j] += FRESH(l, skip, grad);
        o[j] = e == NULL ? 0.0f : e[j];
    }
}

/* Its backward from the new state hn: dpre ([.., N]), added into dx too, and prev (a held
 * state's gradient, plus dprev; the caller adds dpre W_hh). */
void act_backward(int64_t threads, int64_t P, int64_t B, int64_t N, int64_t t, const int64_t *lengths, int64_t which,
                  const float *dh, const float *hn, int64_t h_ps, const float *dprev, int64_t dprev_ps,
                  float *dpre, int64_t dpre_ps, float *dx, int64_t dx_ps, const int64_t *xrow, float *prev) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++)
        for (int64_t b = 0; b < B; b++) {
            const float *d = dh + (p * B + b) * N, *y = hn + p * h_ps + b * N;
            const float *e = dprev == NULL ? NULL : dprev + p * dprev_ps + b * N;
            float *g = dpre + p * dpre_ps + b * N, *gx = dx + p * dx_ps + xrow[b] * N, *o = prev + (p * B + b) * N;
            if (alive(lengths, t, b))
                ROW(N, act_backward_lanes, which, d, y, e, g, gx, o);
            else
                held_backward(N, N, d, e, g, o);
        }
}

LANES lstm_forward_lanes(int64_t j0, int64_t count, int64_t skip, int64_t N, const float *gx, const float *a,
                         const float *cp, float *ho, float *co, float *sv) {
    (void)skip;
    IVDEP
    for (int64_t l = 0; l < count; l++) {
        int64_t j = j0 + l;
        float i = sigmoid_f(gx[j] + a[j]), f = sigmoid_f(gx[N + j] + a[N + j]);
        float g = tanh_f(gx[2 * N + j] + a[2 * N + j]), o = sigmoid_f(gx[3 * N + j] + a[3 * N + j]);
        float cc = f * cp[j] + i * g;
        float tc = tanh_f(cc);
        co[j] = cc;
        ho[j] = o * tc;
        sv[j] = i;
        sv[N + j] = f;
        sv[2 * N + j] = g;
        sv[3 * N + j] = o;
        sv[4 * N + j] = tc;
    }
}

/* LSTM (torch's gates i, f, g, o) from gx + gh ([.., 4N]; gh = W_hh h); c the cell state (same
 * layout as h). Saves sigmoid(i), sigmoid(f), tanh(g), sigmoid(o), tanh(c') per row (s, width 5N). */
void lstm_forward(int64_t threads, int64_t P, int64_t B, int64_t N, int64_t t, const int64_t *lengths,
                  const float *x, int64_t x_ps, const int64_t *xrow, const float *gh, int64_t gh_ps,
                  const float *h, float *hn, const float *c, float *cn, int64_t h_ps, float *s, int64_t s_ps) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++)
        for (int64_t b = 0; b < B; b++) {
            const float *gx = x + p * x_ps + xrow[b] * 4 * N, *a = gh + p * gh_ps + b * 4 * N;
            const float *hp = h + p * h_ps + b * N, *cp = c + p * h_ps + b * N;
            float *ho = hn + p * h_ps + b * N, *co = cn + p * h_ps + b * N, *sv = s + p * s_ps + b * 5 * N;
            if (alive(lengths, t, b)) {
                ROW(N, lstm_forward_lanes, gx, a, cp, ho, co, sv);
            } else {
                memcpy(ho, hp, N * sizeof(float));
                memcpy(co, cp, N * sizeof(float));
            }
        }
}

LANES lstm_backward_lanes(int64_t j0, int64_t count, int64_t skip, int64_t N, const float *d, const float *dcc,
                          const float *sv, const float *cp, const float *e, float *g, float *gx, float *o,
                          float *oc) {
    IVDEP
    for (int64_t l = 0; l < count; l++) {
        int64_t j = j0 + l;
        float i = sv[j], f = sv[N + j], gg = sv[2 * N + j], og = sv[3 * N + j], tc = sv[4 * N + j];
        float dct = dcc[j] + d[j] * og * (1.0f - tc * tc);
        float ai = dct * gg * i * (1.0f - i), af = dct * cp[j] * f * (1.0f - f);
        float ag = dct * i * (1.0f - gg * gg), ao = d[j] * tc * og * (1.0f - og);
        g[j] = ai;
        g[N + j] = af;
        g[2 * N + j] = ag;
        g[3 * N + j] = ao;
        gx[j] += FRESH(l, skip, ai);
        gx[N + j] += FRESH(l, skip, af);
        gx[2 * N + j] += FRESH(l, skip, ag);
        gx[3 * N + j] += FRESH(l, skip, ao);
        oc[j] = dct * f;
        o[j] = e == NULL ? 0.0f : e[j];
    }
}

/* Its backward: dh, dc (gradients reaching h_t and c_t, [P, B, N] contiguous) -> dpre
 * ([.., 4N]; added into dx too), prev (reaching h_{t-1}: dprev; the caller adds dpre W_hh)
 * and cprev (reaching c_{t-1}). c is the state before the step. */
void lstm_backward(int64_t threads, int64_t P, int64_t B, int64_t N, int64_t t, const int64_t *lengths,
                   const float *dh, const float *dc, const float *s, int64_t s_ps, const float *c, int64_t h_ps,
                   const float *dprev, int64_t dprev_ps, float *dpre, int64_t dpre_ps, float *dx, int64_t dx_ps,
                   const int64_t *xrow, float *prev, float *cprev) {
    OVER_MODELS
    for (int64_t p = 0; p < P; p++)
        for (int64_t b = 0; b < B; b++) {
            int64_t row = (p * B + b) * N;
            const float *d = dh + row, *dcc = dc + row, *sv = s + p * s_ps + b * 5 * N, *cp = c + p * h_ps + b * N;
            const float *e = dprev == NULL ? NULL : dprev + p * dprev_ps + b * N;
            float *g = dpre + p * dpre_ps + b * 4 * N, *gx = dx + p * dx_ps + xrow[b] * 4 * N;
            float *o = prev + row, *oc = cprev + row;
            if (alive(lengths, t, b)) {
                ROW(N, lstm_backward_lanes, d, dcc, sv, cp, e, g, gx, o, oc);
            } else {
                held_backward(N, 4 * N, d, e, g, o);
                memcpy(oc, dcc, N * sizeof(float));
            }
        }
}

/* ---- Block-sparse products: a layer masked by a block structure (graph2nn's relational
 * layer, (A + I) (x) 1), computing only its blocks (topowire/compiler/blocks.py drives them).
 *
 * A plan lists Q output nodes (over the P models of a pack): node q is model nodes[3q]'s
 * output channels [nodes[3q+1], + nodes[3q+2]), and it reads the input channels of the
 * segments seg_ptr[q] .. seg_ptr[q+1] of segs ([start, length] pairs). Each node's block is
 * one small dense product: its inputs gathered into a scratch panel, its weights packed
 * transposed, multiplied by a register-tiled kernel written with GCC's vector extensions.
 */
typedef float vf __attribute__((vector_size(VEC * 4)));
typedef float vfu __attribute__((vector_size(VEC * 4), aligned(4)));

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
