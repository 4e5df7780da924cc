/* One candidate of Sampler.generate, on every core: the batch-1 sampling loop in C.
 *
 * At batch 1 a character costs one read of every weight (5 MB for 3 x 256), which is more
 * than one core's L2, so one core streams them from L3 and NumPy cannot beat ~250x the
 * Keras reference. Here each of T threads owns H/T hidden units of every layer: it reads
 * only the weight columns of its units (a T-th of the model: 2.7 MB of 3 x 256 on two
 * threads, most of which stays in the core's 2 MiB L2 from one character to the next),
 * computes their four gates and its part of h and c, and meets the others at a spin
 * barrier once a layer (spinning, then yielding the core if the wait drags on). The output layer is split the same way; thread 0 then samples (temperature, top-k,
 * top-p, inverse CDF on the caller's uniforms) exactly as Sampler._choose_one does in NumPy.
 *
 * Weights arrive packed by bot/engine/sampler.py (_pack): for thread t and layer l a block-major
 * [nb][K][BW] float32 matrix of the thread's gate columns (i, f, o, g for its units, the
 * sigmoid ones pre-scaled by 1/2), zero-padded to whole BW-column blocks; layer 0 reads
 * [h0] and adds a row of the folded input table, later layers read [h_below ; h_own ; 1].
 *
 * float32 throughout like the NumPy engine; the sums run in a different order, so results
 * agree with it (and with Keras) to float32 rounding, not bit for bit.
 *
 * Constrained decoding (bot/engine/vocab.py's WordTrie): thread 0 masks the characters the trie
 * state forbids before it samples, and steps the state with a binary search in the sorted
 * transition keys, as Sampler._choose_one and WordTrie.advance do in NumPy.
 *
 * A barrier wait is bounded (j->barrier.wait_ns): a helper that never arrives (descheduled
 * for good, stopped) makes thread 0 give up on it, restore the state it saved at the start
 * of the character, and finish the post alone on its own copy of the run state, which
 * gives the same post (step_alone does the same sums). A helper that arrives later sees
 * the barrier abandoned and leaves; one that never does is detached, and what it could
 * still read is leaked rather than freed under it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BW 64          /* output columns per block: eight 8-float accumulators */
#define MAX_THREADS 8
#define MAX_LAYERS 16
#define MAX_UNITS 2048 /* hidden units per thread */
#define SPINS 4000     /* busy-wait this long at a barrier, then yield the core */

/* Test hook (_lstm._stall): helper 1 does not arrive at its stall_at-th barrier (counted
 * from 0 in each call) until the barrier is abandoned, or, with stall_hold, until released. */
static atomic_int stall_at = -1;
static atomic_int stall_hold = 0;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__linux__)
/* AVX2 + FMA where the CPU has it, chosen at load time; plain x86-64 otherwise. */
#define HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#define RELAX() __builtin_ia32_pause()
#else
#define HOT
#define RELAX() ((void)0)
#endif

typedef float v8 __attribute__((vector_size(32), aligned(4)));
#define v8_of(x) ((v8){x, x, x, x, x, x, x, x})

/* y[nb * BW] = x[K] @ M for M block-major [nb][K][BW]. */
static inline __attribute__((always_inline)) void
matvec(const float *restrict x, int K, const float *restrict M, int nb, float *restrict y)
{
    for (int b = 0; b < nb; b++) {
        v8 a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, a4 = {0}, a5 = {0}, a6 = {0}, a7 = {0};
        const v8 *m = (const v8 *)(M + (size_t)b * K * BW);
        for (int k = 0; k < K; k++, m += 8) {
            float xk = x[k];
            a0 += xk * m[0]; a1 += xk * m[1]; a2 += xk * m[2]; a3 += xk * m[3];
            a4 += xk * m[4]; a5 += xk * m[5]; a6 += xk * m[6]; a7 += xk * m[7];
        }
        v8 *o = (v8 *)(y + b * BW);
        o[0] = a0; o[1] = a1; o[2] = a2; o[3] = a3; o[4] = a4; o[5] = a5; o[6] = a6; o[7] = a7;
    }
}

typedef int32_t v8i __attribute__((vector_size(32), aligned(4)));

static inline __attribute__((always_inline)) v8 select8(v8i mask, v8 a, v8 b)
{
    return (v8)(((v8i)a & mask) | ((v8i)b & ~mask));
}

/* tanh of 8 floats, within 1.2e-7 of the true value: exp(2x) by Cephes' expf polynomial
 * with the power of two put in by hand; below |x| = 0.1 a Taylor series (tanh there is x,
 * less 1e-14 of it). Vector types, so it compiles to SIMD on any target, with no calls. */
static inline __attribute__((always_inline)) v8 tanh8(v8 v)
{
    const v8 nine = v8_of(9.0f), tenth = v8_of(0.1f);
    v = select8(v > nine, nine, select8(v < -nine, -nine, v)); /* tanh(9) is 1 in float32 */
    v8 y = 2.0f * v;
    v8 fn = (y * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to integer */
    v8 r = y - fn * 0.693359375f - fn * -2.12194440e-4f;
    v8 p = v8_of(1.9875691500e-4f);
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    v8 e = p * (v8)((__builtin_convertvector(fn, v8i) + 127) << 23);
    v8 t = (e - 1.0f) / (e + 1.0f);
    v8 v2 = v * v;
    v8 series = v * (1.0f + v2 * (-1.0f / 3 + v2 * (2.0f / 15 + v2 * (-17.0f / 315 +
                                                               v2 * (62.0f / 2835)))));
    return select8((v < tenth) & (v > -tenth), series, t);
}

/* x[k] = tanh(x[k]) for k < n rounded up to 8: x must have room for that. */
static inline __attribute__((always_inline)) void tanh_inplace(float *x, int n)
{
    for (int k = 0; k < n; k += 8) {
        v8 v;
        memcpy(&v, x + k, sizeof v);
        v = tanh8(v);
        memcpy(x + k, &v, sizeof v);
    }
}

/* -- barrier ---------------------------------------------------------------------------- */

typedef struct {
    atomic_int count;
    atomic_int sense;
    atomic_int abandoned; /* set by the thread that gave up waiting: never met again */
    int n;
    int64_t wait_ns;      /* give up after yielding this long */
} Barrier;

typedef struct {
    int t;      /* thread */
    int sense;  /* its barrier sense */
    int calls;  /* barriers met so far (the test hook counts them) */
} Seat;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* 0 when all n threads have arrived; -1 when the wait passed b->wait_ns or another thread
 * gave up on this barrier (it is then abandoned for good). */
static int barrier_wait(Barrier *b, Seat *seat)
{
    int sense = !seat->sense;
    seat->sense = sense;
    if (atomic_load_explicit(&b->abandoned, memory_order_acquire))
        return -1;
    if (seat->t == 1 && seat->calls++ == atomic_load(&stall_at)) { /* test hook: stall */
        struct timespec ms = {0, 1000000};
        while (atomic_load(&stall_hold) ? atomic_load(&stall_at) >= 0
                                        : !atomic_load(&b->abandoned))
            nanosleep(&ms, NULL);
    }
    if (atomic_fetch_add_explicit(&b->count, 1, memory_order_acq_rel) == b->n - 1) {
        atomic_store_explicit(&b->count, 0, memory_order_relaxed);
        atomic_store_explicit(&b->sense, sense, memory_order_release);
        return 0;
    }
    int spins = 0;
    int64_t since = -1;
    while (atomic_load_explicit(&b->sense, memory_order_acquire) != sense) {
        if (++spins < SPINS) {
            RELAX();
            continue;
        }
        if (atomic_load_explicit(&b->abandoned, memory_order_acquire))
            return -1;
        int64_t now = now_ns();
        if (since < 0) {
            since = now;
        } else if (now - since > b->wait_ns) {
            atomic_store_explicit(&b->abandoned, 1, memory_order_release);
            return -1;
        }
        sched_yield(); /* the other thread may be waiting for this core */
    }
    return 0;
}

/* -- the shared job --------------------------------------------------------------------- */

typedef struct {
    /* model */
    int L, H, V, T;
    const float *weights;       /* everything packed, float32 */
    const int64_t *offsets;     /* [T][L] start of each thread's layer matrix; [T*L]: w_out */
    const float *table;         /* [V][4H] layer 0's folded input (embedding @ kernel + bias) */
    const float *b_out;         /* [V] */
    int nb_out;                 /* blocks of w_out (V padded to BW) */
    /* sampling */
    double temperature, top_p;
    int top_k, unk, eos, max_chars, soft;
    const uint8_t *ends;        /* [V] 1 for a sentence's last character (. ! ?) */
    const double *uniforms;     /* [max_chars] in [0, 1) */
    int32_t *out;               /* [max_chars] sampled tokens */
    const int32_t *forced;      /* [max_chars] or NULL: feed these, no stops (a replay) */
    float *trace;               /* [max_chars][V] or NULL: the logits each step saw */
    /* constraint (bot/engine/vocab.py WordTrie), or mask NULL */
    const uint8_t *mask;        /* [n_states][(V + 7) / 8] bit v: id v allowed */
    const int64_t *keys;        /* [n_keys] sorted: state * n_alpha + letter class */
    const int32_t *targets;     /* [n_keys] the state each key leads to */
    const int32_t *letter;      /* [V] letter class of each id, -1 for a non-letter */
    int64_t n_keys;
    int n_states, n_alpha, state; /* state: now; n_states - 1 is the free state */
    /* run state */
    float *x0;                  /* [H] layer 0's h */
    float *xh[MAX_LAYERS];      /* layer l >= 1: [h_below (H) ; h_own (H) ; 1] */
    float *hout;                /* [H] the last layer's h, input to the output layer */
    float *c;                   /* [L][H] */
    float *logits;              /* [V + padding] */
    Barrier barrier;
    atomic_int token;           /* thread 0 -> others: next input token, -1 = stop */
    atomic_int exited;          /* helpers that have returned */
    double slow;                /* going alone past this many times the fastest step */
    int alone;                  /* 1: thread 0 does every part from the start */
    /* results (thread 0) */
    int n_out, stop, used, alone_from;
    double logprob;
} Job;

typedef struct {
    Job *job;
    int t;
} Worker;

/* What the helpers share with thread 0, in one allocation that outlives them. */
typedef struct {
    Job job;
    Worker workers[MAX_THREADS];
} Shared;

static int unit_start(const Job *j, int t)
{
    int base = j->H / j->T, extra = j->H % j->T;
    return t * base + (t < extra ? t : extra);
}

/* The new h of layer l goes where layer l+1 reads its input; the old one stays in place. */
static float *h_dest(Job *j, int l) { return l + 1 < j->L ? j->xh[l + 1] : j->hout; }
static float *h_own(Job *j, int l) { return l == 0 ? j->x0 : j->xh[l] + j->H; }

/* Thread t's units of layer l: the products, the gates, c, and the new h into h_dest. */
HOT static void layer_part(Job *j, int t, int l, int token, float *z)
{
    const int H = j->H, u0 = unit_start(j, t), n = unit_start(j, t + 1) - u0;
    const int nb = (4 * n + BW - 1) / BW;
    const float *M = j->weights + j->offsets[t * j->L + l];
    float tc[MAX_UNITS + 8]; /* tanh(c): rounded up to whole vectors, so not in place */
    if (l == 0) {
        matvec(j->x0, H, M, nb, z);
        const float *row = j->table + (size_t)token * 4 * H;
        for (int g = 0; g < 4; g++)
            for (int k = 0; k < n; k++)
                z[g * n + k] += row[g * H + u0 + k];
    } else {
        matvec(j->xh[l], 2 * H + 1, M, nb, z);
    }
    float *c = j->c + (size_t)l * H + u0, *dest = h_dest(j, l) + u0;
    tanh_inplace(z, 4 * n); /* i, f, o were pre-scaled by 1/2: sigmoid = (1 + tanh) / 2 */
    for (int k = 0; k < 3 * n; k++)
        z[k] = 0.5f * z[k] + 0.5f;
    for (int k = 0; k < n; k++)
        tc[k] = c[k] = z[n + k] * c[k] + z[k] * z[3 * n + k];
    tanh_inplace(tc, n);
    for (int k = 0; k < n; k++)
        dest[k] = z[2 * n + k] * tc[k];
}

/* Once every part of layer l has read its old h: thread t's units of the new one. */
static void publish_part(Job *j, int t, int l)
{
    int u0 = unit_start(j, t), n = unit_start(j, t + 1) - u0;
    memcpy(h_own(j, l) + u0, h_dest(j, l) + u0, (size_t)n * sizeof(float));
}

/* One character through every layer for thread t's units, in step with the others. */
static int step_units(Job *j, int token, float *z, Seat *seat)
{
    for (int l = 0; l < j->L; l++) {
        layer_part(j, seat->t, l, token, z);
        if (barrier_wait(&j->barrier, seat) < 0)
            return -1;
        publish_part(j, seat->t, l);
    }
    return 0;
}

static void output_part(Job *j, int t);

/* One character, every thread's part done by this one: the same sums, so the same result. */
static void step_alone(Job *j, int token, float *z)
{
    for (int l = 0; l < j->L; l++) {
        for (int t = 0; t < j->T; t++)
            layer_part(j, t, l, token, z);
        for (int t = 0; t < j->T; t++)
            publish_part(j, t, l);
    }
    for (int t = 0; t < j->T; t++)
        output_part(j, t);
}

/* Thread t's share of the output layer: whole BW-column blocks of the logits. */
HOT static void output_part(Job *j, int t)
{
    int b0 = j->nb_out * t / j->T, b1 = j->nb_out * (t + 1) / j->T;
    const float *M = j->weights + j->offsets[j->T * j->L] + (size_t)b0 * j->H * BW;
    matvec(j->hout, j->H, M, b1 - b0, j->logits + b0 * BW);
    int end = b1 * BW < j->V ? b1 * BW : j->V;
    for (int v = b0 * BW; v < end; v++)
        j->logits[v] += j->b_out[v];
}

/* -- sampling: Sampler._choose_one ------------------------------------------------------ */

typedef struct {
    double w;
    int v;
} Ranked;

static int by_weight_desc(const void *a, const void *b)
{
    double wa = ((const Ranked *)a)->w, wb = ((const Ranked *)b)->w;
    return (wa < wb) - (wa > wb);
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}

static int bit(const uint8_t *row, int v) { return (row[v >> 3] >> (v & 7)) & 1; }

/* Pick the next token from `logits` with uniform u (or take `forced`, when >= 0); adds
 * its log-probability (T=1, never masked). Under a constraint the ids the trie state
 * forbids get no weight and the rest are shifted by their own maximum, as in NumPy. */
static int choose(Job *j, const float *logits, double u, int forced, double *z, double *w,
                  double *tmp, Ranked *order)
{
    const int V = j->V;
    double zmax = -INFINITY;
    for (int v = 0; v < V; v++) {
        z[v] = v == j->unk ? -INFINITY : (double)logits[v];
        if (z[v] > zmax)
            zmax = z[v];
    }
    double total_e = 0.0;
    int best = 0;
    for (int v = 0; v < V; v++) {
        z[v] -= zmax;
        total_e += exp(z[v]);
        if (z[v] > z[best])
            best = v;
    }
    const uint8_t *row =
        j->mask && forced < 0 ? j->mask + (size_t)j->state * (size_t)((V + 7) / 8) : NULL;
    double shift = 0.0; /* NumPy: zc = where(allowed, z, -inf); zc -= zc.max() */
    if (row) {
        double cmax = -INFINITY;
        int cbest = -1;
        for (int v = 0; v < V; v++)
            if (bit(row, v) && z[v] > cmax) {
                cmax = z[v];
                cbest = v;
            }
        if (cbest >= 0) {
            best = cbest;
            shift = cmax;
        } else {
            row = NULL; /* nothing allowed can be drawn (a corrupt trie): unconstrained */
        }
    }
    int token = forced >= 0 ? forced : best;
    if (forced < 0 && j->temperature > 0) {
        for (int v = 0; v < V; v++) {
            double zv = z[v] - shift;
            w[v] = row && !bit(row, v) ? 0.0
                   : j->temperature == 1.0 ? exp(zv) : exp(zv / j->temperature);
        }
        if (j->top_k > 0 && j->top_k < V) {
            memcpy(tmp, w, (size_t)V * sizeof(double));
            qsort(tmp, (size_t)V, sizeof(double), cmp_desc);
            double kth = tmp[j->top_k - 1];
            for (int v = 0; v < V; v++)
                if (w[v] < kth)
                    w[v] = 0.0;
        }
        if (j->top_p < 1.0) {
            /* keep the smallest prefix (by weight) whose mass reaches top_p */
            double total = 0.0;
            for (int v = 0; v < V; v++) {
                order[v] = (Ranked){w[v], v};
                total += w[v];
            }
            qsort(order, (size_t)V, sizeof(Ranked), by_weight_desc);
            double before = 0.0;
            for (int r = 0; r < V; r++) {
                double wv = order[r].w;
                tmp[order[r].v] = (before + wv) / total - wv / total >= j->top_p ? 0.0 : wv;
                before += wv;
            }
            memcpy(w, tmp, (size_t)V * sizeof(double));
        }
        double cum = 0.0;
        for (int v = 0; v < V; v++)
            cum += w[v];
        double target = (1.0 - u) * cum, run = 0.0;
        token = V - 1;
        for (int v = 0; v < V; v++) {
            run += w[v];
            if (run >= target) {
                token = v;
                break;
            }
        }
        j->used++;
    }
    j->logprob += z[token] - log(total_e);
    return token;
}

/* The trie state after `token` (WordTrie.advance): a non-letter goes to the root, a letter
 * along its edge, found by binary search; no edge (never sampled under the mask): free. */
static int next_state(const Job *j, int state, int token)
{
    int k = j->letter[token];
    if (k < 0)
        return 0;
    int64_t key = (int64_t)state * j->n_alpha + k, lo = 0, hi = j->n_keys;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo) / 2;
        if (j->keys[mid] < key)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < j->n_keys && j->keys[lo] == key && j->targets[lo] >= 0 &&
        j->targets[lo] < j->n_states)
        return j->targets[lo];
    return j->n_states - 1;
}

/* -- threads ---------------------------------------------------------------------------- */

static void *helper(void *arg)
{
    Worker *wk = arg;
    Job *j = wk->job;
    float z[4 * MAX_UNITS + BW];
    Seat seat = {wk->t, 0, 0};
    for (;;) {
        if (barrier_wait(&j->barrier, &seat) < 0) /* thread 0 has published the next token */
            break;
        int token = atomic_load_explicit(&j->token, memory_order_acquire);
        if (token < 0 || step_units(j, token, z, &seat) < 0)
            break;
        output_part(j, seat.t);
        if (barrier_wait(&j->barrier, &seat) < 0) /* the logits are whole: thread 0 samples */
            break;
    }
    atomic_fetch_add_explicit(&j->exited, 1, memory_order_release);
    return NULL;
}

/* The run state a step starts from (each layer's own h, and c), from one job to another
 * of the same shape. */
static void copy_state(Job *to, const Job *from)
{
    const int H = to->H;
    memcpy(to->x0, from->x0, (size_t)H * sizeof(float));
    for (int l = 1; l < to->L; l++)
        memcpy(to->xh[l] + H, from->xh[l] + H, (size_t)H * sizeof(float));
    memcpy(to->c, from->c, (size_t)to->L * H * sizeof(float));
}

/* Thread 0: sample, step, sample, ... until a stop; the helpers follow the barriers.
 * If the threads fall behind (other processes hold the cores, so a helper keeps missing
 * its turn), the steps so far average more than j->slow times the fastest one; a single
 * thread is then the quicker way, and this one finishes the post alone. If a helper never
 * arrives (a barrier wait passes its bound), the character is done again alone on `solo`
 * (a private copy of the run state, saved before the helpers were woken) and the post
 * finished there. Returns the job whose run state holds the state after the post. */
static Job *lead(Job *j, Job *solo, float *z, double *scratch, Ranked *order)
{
    const int V = j->V;
    double *zd = scratch, *w = scratch + V, *tmp = scratch + 2 * V;
    int together = j->T > 1 && !j->alone, steps = 0;
    Seat seat = {0, 0, 0};
    Job *run = j; /* whose run state the steps use */
    int64_t best = INT64_MAX, total = 0;
    j->stop = 0; /* length */
    j->alone_from = -1;
    for (int t = 0; t < j->max_chars; t++) {
        if (j->trace)
            memcpy(j->trace + (size_t)t * V, run->logits, (size_t)V * sizeof(float));
        int token = choose(j, run->logits, j->temperature > 0 ? j->uniforms[j->used] : 0.0,
                           j->forced ? j->forced[t] : -1, zd, w, tmp, order);
        if (token == j->eos && !j->forced) {
            j->stop = 1;
            break;
        }
        j->out[j->n_out++] = token;
        if (j->mask)
            j->state = next_state(j, j->state, token);
        if (t >= j->soft && t > 0 && j->ends[token] && !j->forced) {
            j->stop = 2;
            break;
        }
        if (t + 1 == j->max_chars)
            break; /* the last character needs no next-character logits */
        if (!together) {
            step_alone(run, token, z);
            continue;
        }
        int64_t t0 = now_ns();
        copy_state(solo, j); /* where to start again if a helper does not arrive */
        atomic_store_explicit(&j->token, token, memory_order_release);
        if (barrier_wait(&j->barrier, &seat) < 0 || step_units(j, token, z, &seat) < 0) {
            together = 0; /* a helper never arrived: this character again, alone */
            run = solo;
            j->alone_from = t;
            step_alone(run, token, z);
            continue;
        }
        output_part(j, 0);
        if (barrier_wait(&j->barrier, &seat) < 0) {
            together = 0;
            run = solo;
            j->alone_from = t;
            step_alone(run, token, z);
            continue;
        }
        int64_t dt = now_ns() - t0;
        best = dt < best ? dt : best;
        total += dt;
        if (++steps >= 16 && (double)total > j->slow * (double)best * steps) {
            atomic_store_explicit(&j->token, -1, memory_order_release);
            barrier_wait(&j->barrier, &seat); /* the helpers leave (or it is abandoned) */
            together = 0;
            j->alone_from = t + 1;
        }
    }
    if (together) {
        atomic_store_explicit(&j->token, -1, memory_order_release);
        barrier_wait(&j->barrier, &seat);
    }
    return run;
}

/* -- Python ----------------------------------------------------------------------------- */

static int need(Py_buffer *b, Py_ssize_t bytes, const char *what)
{
    if (b->len < bytes) {
        PyErr_Format(PyExc_ValueError, "_lstm.generate: %s is %zd bytes, needs %zd", what,
                     b->len, bytes);
        return 0;
    }
    return 1;
}

PyDoc_STRVAR(generate_doc,
"generate(weights, offsets, table, b_out, h, c, logits, ends, uniforms, out, forced,\n"
"         trace, mask, keys, targets, letter,\n"
"         n_layer, n_hidden, vocab, threads, nb_out, max_chars, soft, top_k, unk, eos,\n"
"         n_states, n_alpha, state, temperature, top_p, slow, wait, alone)\n"
"    -> (n_out, logprob_sum, stop, uniforms_used, alone_from, state)\n\n"
"Sample one candidate from the primed state (h, c: [L][H], logits: [V], all three\n"
"overwritten with those after the last character fed); stop is\n"
"0 length, 1 end-of-post, 2 sentence. forced (int32 [max_chars], or empty) replays\n"
"those tokens with no stops; trace (float32 [max_chars][V], or empty) receives the\n"
"logits each step chose from. mask (uint8 [n_states][(V + 7) / 8]), keys (int64),\n"
"targets (int32), letter (int32 [V]): a WordTrie's arrays, or all empty for no\n"
"constraint; state: the trie state to start in, and after the post. alone_from: the\n"
"step from which thread 0 went on alone (the steps averaged over slow x the fastest,\n"
"or a helper did not arrive at a barrier within wait seconds), or -1; alone: from the\n"
"start. Called by bot.engine.sampler only.");

static PyObject *generate(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer weights, offsets, table, b_out, h, c, logits, ends, uniforms, out, forced, trace,
        mask, keys, targets, letter;
    Job cfg;
    double wait_s;
    memset(&cfg, 0, sizeof cfg);
    if (!PyArg_ParseTuple(args, "y*y*y*y*w*w*w*y*y*w*y*w*y*y*y*y*iiiiiiiiiiiiiddddp",
                          &weights, &offsets, &table, &b_out, &h, &c, &logits, &ends,
                          &uniforms, &out, &forced, &trace, &mask, &keys, &targets, &letter,
                          &cfg.L, &cfg.H, &cfg.V, &cfg.T, &cfg.nb_out, &cfg.max_chars,
                          &cfg.soft, &cfg.top_k, &cfg.unk, &cfg.eos, &cfg.n_states,
                          &cfg.n_alpha, &cfg.state, &cfg.temperature, &cfg.top_p, &cfg.slow,
                          &wait_s, &cfg.alone))
        return NULL;
    Py_buffer *all[] = {&weights, &offsets, &table, &b_out, &h,       &c,    &logits, &ends,
                        &uniforms, &out,    &forced, &trace, &mask, &keys, &targets, &letter};
    /* what a helper reads: kept (leaked) with the shared block if one never returns */
    Py_buffer *helpers_read[] = {&weights, &offsets, &table, &b_out};
    PyObject *result = NULL;
    Shared *shared = NULL;
    float *arena = NULL, *solo_arena = NULL;
    double *scratch = NULL;
    Ranked *order = NULL;
    int leak = 0;
    const int L = cfg.L, H = cfg.H, V = cfg.V, T = cfg.T;
    if (L < 1 || L > MAX_LAYERS || H < 1 || V < 1 || T < 1 || T > MAX_THREADS || T > H ||
        (H + T - 1) / T > MAX_UNITS || cfg.max_chars < 1 || cfg.nb_out * BW < V ||
        !(wait_s >= 0)) {
        PyErr_SetString(PyExc_ValueError, "_lstm.generate: unsupported shape or thread count");
        goto done;
    }
    if (!need(&offsets, (Py_ssize_t)(T * L + 1) * 8, "offsets") ||
        !need(&table, (Py_ssize_t)V * 4 * H * 4, "table") || !need(&b_out, V * 4, "b_out") ||
        !need(&h, (Py_ssize_t)L * H * 4, "h") || !need(&c, (Py_ssize_t)L * H * 4, "c") ||
        !need(&logits, V * 4, "logits") || !need(&ends, V, "ends") ||
        !need(&uniforms, (Py_ssize_t)cfg.max_chars * 8, "uniforms") ||
        !need(&out, (Py_ssize_t)cfg.max_chars * 4, "out") ||
        (forced.len && !need(&forced, (Py_ssize_t)cfg.max_chars * 4, "forced")) ||
        (trace.len && !need(&trace, (Py_ssize_t)cfg.max_chars * V * 4, "trace")))
        goto done;
    if (mask.len) {
        if (cfg.n_states < 2 || cfg.n_alpha < 0 || cfg.state < 0 ||
            cfg.state >= cfg.n_states || keys.len % 8 || targets.len != keys.len / 2) {
            PyErr_SetString(PyExc_ValueError, "_lstm.generate: inconsistent constraint");
            goto done;
        }
        if (!need(&mask, (Py_ssize_t)cfg.n_states * ((V + 7) / 8), "mask") ||
            !need(&letter, (Py_ssize_t)V * 4, "letter"))
            goto done;
        cfg.mask = mask.buf;
        cfg.keys = keys.buf;
        cfg.targets = targets.buf;
        cfg.letter = letter.buf;
        cfg.n_keys = keys.len / 8;
    }
    cfg.weights = weights.buf;
    cfg.offsets = offsets.buf;
    for (int k = 0; k <= T * L; k++) {
        int t = k / L, l = k % L;
        int64_t rows = k == T * L ? H : (l == 0 ? H : 2 * H + 1);
        int64_t units = unit_start(&cfg, t + 1) - unit_start(&cfg, t);
        int64_t blocks = k == T * L ? cfg.nb_out : (4 * units + BW - 1) / BW;
        if (cfg.offsets[k] < 0 || (cfg.offsets[k] + rows * blocks * BW) * 4 > weights.len) {
            PyErr_SetString(PyExc_ValueError, "_lstm.generate: offsets outside weights");
            goto done;
        }
    }
    cfg.table = table.buf;
    cfg.b_out = b_out.buf;
    cfg.ends = ends.buf;
    cfg.uniforms = uniforms.buf;
    cfg.out = out.buf;
    cfg.forced = forced.len ? forced.buf : NULL;
    cfg.trace = trace.len ? trace.buf : NULL;
    if (cfg.forced)
        for (int t = 0; t < cfg.max_chars; t++)
            if (cfg.forced[t] < 0 || cfg.forced[t] >= V) {
                PyErr_SetString(PyExc_ValueError, "_lstm.generate: forced token out of range");
                goto done;
            }

    /* run state: x0 | xh[1..L-1] | hout | c | logits; the same again for thread 0 alone */
    size_t n_floats = (size_t)H + (size_t)(L - 1) * (2 * H + 1) + H + (size_t)L * H +
                      (size_t)cfg.nb_out * BW;
    shared = calloc(1, sizeof *shared);
    arena = calloc(n_floats, sizeof(float));
    solo_arena = calloc(n_floats, sizeof(float));
    scratch = malloc(3 * (size_t)V * sizeof(double));
    order = malloc((size_t)V * sizeof(Ranked));
    if (!shared || !arena || !solo_arena || !scratch || !order) {
        PyErr_NoMemory();
        goto done;
    }
    Job *j = &shared->job, solo;
    float *arenas[2] = {arena, solo_arena};
    Job *jobs[2] = {j, &solo};
    *j = cfg;
    solo = cfg;
    for (int k = 0; k < 2; k++) {
        Job *x = jobs[k];
        float *p = arenas[k], *h0 = h.buf;
        x->x0 = p;
        memcpy(x->x0, h0, (size_t)H * 4);
        p += H;
        for (int l = 1; l < L; l++) {
            x->xh[l] = p;
            memcpy(p + H, h0 + (size_t)l * H, (size_t)H * 4);
            p[2 * H] = 1.0f;
            p += 2 * H + 1;
        }
        x->hout = p;
        p += H;
        x->c = p;
        memcpy(x->c, c.buf, (size_t)L * H * 4);
        p += (size_t)L * H;
        x->logits = p;
        memcpy(x->logits, logits.buf, (size_t)V * 4);
    }
    atomic_init(&j->barrier.count, 0);
    atomic_init(&j->barrier.sense, 0);
    atomic_init(&j->barrier.abandoned, 0);
    atomic_init(&j->token, 0);
    atomic_init(&j->exited, 0);
    j->barrier.n = T;
    j->barrier.wait_ns = wait_s > 9e9 ? INT64_MAX : (int64_t)(wait_s * 1e9);

    int started = 0, failed = 0;
    Job *after = j;
    Py_BEGIN_ALLOW_THREADS
    pthread_t threads[MAX_THREADS];
    float z[4 * MAX_UNITS + BW];
    for (int t = 1; t < T && !j->alone; t++) {
        shared->workers[t].job = j;
        shared->workers[t].t = t;
        if (pthread_create(&threads[t], NULL, helper, &shared->workers[t]) != 0) {
            failed = 1;
            break;
        }
        started++;
    }
    if (!failed) {
        after = lead(j, &solo, z, scratch, order);
    } else {
        /* release the started helpers: they wait at the first barrier for a token */
        j->barrier.n = started + 1;
        Seat seat = {0, 0, 0};
        atomic_store_explicit(&j->token, -1, memory_order_release);
        barrier_wait(&j->barrier, &seat);
    }
    if (atomic_load(&j->barrier.abandoned)) {
        /* a helper did not arrive: give it as long again to return, else leave it be */
        int64_t until = now_ns() + j->barrier.wait_ns / 2;
        struct timespec ms = {0, 1000000};
        while (atomic_load(&j->exited) < started && now_ns() < until)
            nanosleep(&ms, NULL);
        leak = atomic_load(&j->exited) < started;
    }
    for (int t = 1; t <= started; t++)
        if (leak)
            pthread_detach(threads[t]);
        else
            pthread_join(threads[t], NULL);
    Py_END_ALLOW_THREADS
    if (failed) {
        PyErr_SetString(PyExc_OSError, "_lstm.generate: could not start a sampling thread");
        goto done;
    }
    /* the state and logits after the last character fed, for the caller (a replay primes) */
    for (int l = 0; l < L; l++)
        memcpy((float *)h.buf + (size_t)l * H, h_own(after, l), (size_t)H * 4);
    memcpy(c.buf, after->c, (size_t)L * H * 4);
    memcpy(logits.buf, after->logits, (size_t)V * 4);
    result = Py_BuildValue("(idiiii)", j->n_out, j->logprob, j->stop, j->used, j->alone_from,
                           j->state);
done:
    if (leak) { /* a helper still holds these: never free them or release their buffers */
        for (size_t k = 0; k < sizeof helpers_read / sizeof helpers_read[0]; k++)
            helpers_read[k]->obj = NULL;
    } else {
        free(shared);
        free(arena);
    }
    free(solo_arena);
    free(scratch);
    free(order);
    for (size_t k = 0; k < sizeof all / sizeof all[0]; k++)
        if (all[k]->obj)
            PyBuffer_Release(all[k]);
    return result;
}

PyDoc_STRVAR(stall_doc,
"_stall(barrier, hold)\n\n"
"Test hook: in every later generate(), helper thread 1 does not arrive at its\n"
"barrier-th barrier (from 0) until thread 0 gives up on it, or with hold until\n"
"_stall(-1, False) releases it. -1: off.");

static PyObject *stall(PyObject *self, PyObject *args)
{
    (void)self;
    int at, hold;
    if (!PyArg_ParseTuple(args, "ip", &at, &hold))
        return NULL;
    atomic_store(&stall_hold, hold);
    atomic_store(&stall_at, at);
    Py_RETURN_NONE;
}

static PyMethodDef methods[] = {
    {"generate", generate, METH_VARARGS, generate_doc},
    {"_stall", stall, METH_VARARGS, stall_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_lstm",
    "The batch-1 sampling loop of bot.engine.sampler, in C, on every core.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__lstm(void) { return PyModule_Create(&module); }
