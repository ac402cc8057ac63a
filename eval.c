/* Perplexity and needle-in-a-haystack evaluation (eval.h), their tables, CSVs and SVG charts. */
#include "cli.h"
#include "eval.h"
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void eval_describe(const Model *m, const char *path, char *out, size_t cap) {
    const Encoding *e = &m->pe;
    int n = snprintf(out, cap, "%s, -pe %s", path, e->method->name);
    if (e->set.scale > 0 && n >= 0 && (size_t)n < cap)   /* the scaling methods: RoPE's and alibi-pi */
        n += snprintf(out + n, cap - n, ", s = %g", e->set.scale);
    if (n >= 0 && (size_t)n < cap) n += snprintf(out + n, cap - n, ", ctx %d, trained at %d", m->kv.n_slots, m->c.train_ctx);
    if (e->set.dyn_stale && n >= 0 && (size_t)n < cap) n += snprintf(out + n, cap - n, ", -dyn-kv stale");
    if (e->ops->far_pos && n >= 0 && (size_t)n < cap) n += snprintf(out + n, cap - n, ", -grp-n %d -grp-w %d", e->set.group_n, e->set.group_w);
    if (m->kv.type != KV_F32 && n >= 0 && (size_t)n < cap) snprintf(out + n, cap - n, ", -kv %s", kv_type_names[m->kv.type]);
}

/* Progress on stderr, only for runs longer than a few seconds: a line rewritten in place on a terminal,
   a line every 10 s in a log or for a tagged run (runs side by side would rewrite each other's line).
   ETA from the fraction of the work (tokens, not items) done. */
typedef struct { double t0, next; int shown; } Progress;

static void progress(Progress *pr, const char *tag, const char *what, long long done, long long total, double frac) {
    double t = now_s(), el = t - pr->t0;
    int tty = !tag && isatty(STDERR_FILENO);
    if (done < total ? el < 3 || t < pr->next : !pr->shown) return;
    pr->next = t + (tty ? 0.5 : 10);
    pr->shown = 1;
    fprintf(stderr, "%s%s%s%s: %lld/%lld, %.0f s elapsed, ETA %.0f s%s", tty ? "\r" : "", tag ? tag : "", tag ? ": " : "", what, done, total, el,
            frac > 0 ? el * (1 - frac) / frac : 0.0, tty && done < total ? "" : "\n");
}

/* A window or prompt of n tokens at positions 0..n-1 must fit the cache and the encoding, unless it
   streams through a shifting cache, whose positions stay below its size. */
static int check_fits(const Model *m, int n, int shift, const char *what, char *err) {
    if (shift) return 0;
    if (n > m->kv.n_slots) return encoding_error(err, "%s of %d tokens does not fit in the context of %d (raise -ctx, or stream it with -keep)", what, n, m->kv.n_slots);
    if (n - 1 > m->pe.max_pos)
        return encoding_error(err, "%s of %d tokens needs positions up to %d, past what -pe %s can represent (0..%d)", what, n, n - 1,
                    m->pe.method->name, m->pe.max_pos);
    return 0;
}

/* Runs ids[0..n) after what the cache holds, at the next positions, writing every row's logits if
   logits is not NULL. With shift, a full cache is shifted first (keep sinks and the newest half of the
   rest, positions re-indexed: llama.cpp's context shift, StreamingLLM's sinks); callers have checked
   that n fits otherwise. */
static int feed(Model *m, const int *ids, int n, int shift, int keep, float *logits, char *err) {
    for (int a = 0, len; a < n; a += len) {
        int room = m->kv.n_slots - m->kv.n_used;
        if (room == 0 && shift) {
            if (model_shift(m, keep, err) < 0) return -1;
            room = m->kv.n_slots - m->kv.n_used;
        }
        len = n - a < room ? n - a : room;
        float *rows = logits ? logits + (size_t)a * m->c.vocab_size : NULL;
        if (model_forward(m, ids + a, len, model_next_pos(m), rows, rows != NULL, err)) return -1;
    }
    return 0;
}

/* -log softmax(row)[target], in double */
static double nll_of(const float *row, int V, int target) {
    double mx = row[0], sum = 0;
    for (int i = 1; i < V; i++) if (row[i] > mx) mx = row[i];
    for (int i = 0; i < V; i++) sum += exp(row[i] - mx);
    return log(sum) + mx - row[target];
}

/* ---- perplexity ---- */

/* [0,L) is bucket 0, [L*2^(b-1), L*2^b) bucket b */
static int bucket_of(long long p, long long L) {
    int b = 0;
    for (long long hi = L; p >= hi; hi *= 2) b++;
    return b;
}

static long long bucket_lo(const Ppl *p, int b) { return b ? (long long)p->bucket << (b - 1) : 0; }
static long long bucket_hi(const Ppl *p, int b) {
    long long hi = (long long)p->bucket << b;
    return hi < p->window ? hi : p->window;
}

int eval_ppl(Model *m, const int *text, size_t n, Ppl *p, char *err) {
    int N = p->window, S = p->stride, V = m->c.vocab_size;
    if (S < 1 || S > N) return encoding_error(err, "-stride %d must lie in [1, %d] (the window)", S, N);
    if (p->bucket < 1 || p->chunk < 1) return encoding_error(err, "bucket unit %d and chunk %d must be positive", p->bucket, p->chunk);
    if (n < (size_t)N + 1)
        return encoding_error(err, "the text gives %zu tokens (after -max-tokens), fewer than one window of %d plus the token it predicts (lower -ctx)", n, N);
    if (check_fits(m, N, p->shift, "a window", err)) return -1;
    long long n_win = (long long)((n - N - 1) / S + 1);
    float *logits = malloc((size_t)p->chunk * V * sizeof *logits);
    if (!logits) return encoding_error(err, "out of memory for %d rows of logits", p->chunk);
    p->windows = p->tokens = p->bytes = 0;
    p->nll = 0;
    p->n_buckets = bucket_of(N - 1, p->bucket) + 1;
    memset(p->b_tokens, 0, sizeof p->b_tokens);
    memset(p->b_bytes, 0, sizeof p->b_bytes);
    memset(p->b_nll, 0, sizeof p->b_nll);
    Progress pr = {now_s(), 0, 0};
    char piece[4096];
    for (long long w = 0; w < n_win; w++) {
        const int *win = text + w * S;
        int first = w ? N - S : 0;   /* rows before it were scored by earlier windows */
        model_reset(m);
        for (int a = 0; a < N; a += p->chunk) {
            int b = N - a > p->chunk ? a + p->chunk : N, scored = b > first;
            if (feed(m, win + a, b - a, p->shift, p->keep, scored ? logits : NULL, err)) { free(logits); return -1; }
            for (int r = a > first ? a : first; r < b; r++) {
                double nll = nll_of(logits + (size_t)(r - a) * V, V, win[r + 1]);
                int bytes = tokenizer_decode(&m->tok, win[r], win[r + 1], piece, sizeof piece), k = bucket_of(r, p->bucket);
                p->b_tokens[k]++;
                p->b_bytes[k] += bytes;
                p->b_nll[k] += nll;
            }
        }
        p->windows++;
        progress(&pr, p->tag, "ppl windows", w + 1, n_win, (w + 1.0) / n_win);
    }
    for (int k = 0; k < p->n_buckets; k++) {
        p->tokens += p->b_tokens[k];
        p->bytes += p->b_bytes[k];
        p->nll += p->b_nll[k];
    }
    free(logits);
    return 0;
}

/* mean NLL (nats), bits/token, perplexity, bits/byte */
static void ppl_stats(long long tokens, long long bytes, double nll, double out[4]) {
    out[0] = tokens ? nll / tokens : NAN;
    out[1] = out[0] / log(2);
    out[2] = exp(out[0]);
    out[3] = bytes ? nll / log(2) / bytes : NAN;
}

void ppl_print(const Ppl *p, const char *source, FILE *out) {
    double s[4];
    ppl_stats(p->tokens, p->bytes, p->nll, s);
    fprintf(out, "model %s\nperplexity of %s: window %d tokens, ", p->model, source, p->window);
    if (p->stride == p->window) fprintf(out, "non-overlapping");
    else fprintf(out, "stride %d (each window after the first scores its last %d tokens)", p->stride, p->stride);
    fprintf(out, ", %lld windows\nscored %lld tokens (%lld bytes): mean NLL %.4f nats, %.4f bits/token, perplexity %.5g, %.4f bits/byte\n\n",
            p->windows, p->tokens, p->bytes, s[0], s[1], s[2], s[3]);
    fprintf(out, "%-22s %10s %11s %12s %10s\n", "position in window", "tokens", "bits/token", "perplexity", "bits/byte");
    for (int k = 0; k < p->n_buckets; k++) {
        char range[48];
        snprintf(range, sizeof range, "[%lld, %lld)", bucket_lo(p, k), bucket_hi(p, k));
        ppl_stats(p->b_tokens[k], p->b_bytes[k], p->b_nll[k], s);
        fprintf(out, "%-22s %10lld %11.4f %12.5g %10.4f\n", range, p->b_tokens[k], s[1], s[2], s[3]);
    }
}

void ppl_csv(const Ppl *p, FILE *f) {
    double s[4];
    fprintf(f, "window,stride,bucket,start,end,tokens,bytes,mean_nll,bits_per_token,perplexity,bits_per_byte\n");
    for (int k = 0; k <= p->n_buckets; k++) {
        int total = k == p->n_buckets;
        long long lo = total ? 0 : bucket_lo(p, k), hi = total ? p->window : bucket_hi(p, k);
        long long tokens = total ? p->tokens : p->b_tokens[k], bytes = total ? p->bytes : p->b_bytes[k];
        ppl_stats(tokens, bytes, total ? p->nll : p->b_nll[k], s);
        fprintf(f, "%d,%d,%s,%lld,%lld,%lld,%lld,%.8g,%.8g,%.8g,%.8g\n", p->window, p->stride, total ? "total" : "position", lo, hi,
                tokens, bytes, s[0], s[1], s[2], s[3]);
    }
}

/* ---- needle grid ---- */

static const char *const HAY_NAME[] = {"filler", "corpus"};

double needle_depth(const Needle *g, int d) { return g->n_depths > 1 ? (double)d / (g->n_depths - 1) : 0; }

uint64_t needle_seed(uint64_t seed, int hay, int length, double depth, int trial) {
    uint64_t v[4] = {(uint64_t)hay, (uint64_t)length, (uint64_t)llround(depth * 1e6), (uint64_t)trial};
    Rng r;
    rng_seed(&r, seed);
    uint64_t h = rng_u64(&r);
    for (int i = 0; i < 4; i++) {   /* a splitmix64 chain: each value moves the whole state */
        rng_seed(&r, h ^ v[i]);
        h = rng_u64(&r);
    }
    return h;
}

static NeedleStat *cell(const Needle *g, int h, int l, int d) { return &g->cell[((size_t)h * g->n_lengths + l) * g->n_depths + d]; }
static NeedleStat *dist(const Needle *g, int h, int l, int k) { return &g->dist[((size_t)h * g->n_lengths + l) * NEEDLE_BINS + k]; }

void needle_stat_add(NeedleStat *to, const NeedleStat *s) {
    to->trials += s->trials;
    to->exact += s->exact;
    to->digits += s->digits;
    to->repeats += s->repeats;
    to->repeats_exact += s->repeats_exact;
    to->logp += s->logp;
}

/* One prompt: the answer digits' argmax and log-probability given the true digits before them. */
static int trial(Model *m, const int *ids, int T, int shift, int keep, float *logits, NeedleStat *s, char *err) {
    int V = m->c.vocab_size;
    model_reset(m);
    if (feed(m, ids, T - 6, shift, keep, NULL, err) || feed(m, ids + T - 6, 5, shift, keep, logits, err)) return -1;
    *s = (NeedleStat){.trials = 1, .exact = 1};
    for (int i = 0; i < 5; i++) {
        const float *row = logits + (size_t)i * V;
        int want = ids[T - 5 + i], best = 0;
        for (int v = 1; v < V; v++) if (row[v] > row[best]) best = v;
        s->digits += best == want;
        s->exact &= best == want;
        s->logp -= nll_of(row, V, want);
        for (int j = 0; j < i; j++) s->repeats |= ids[T - 5 + j] == want;   /* every digit is one token */
    }
    s->repeats_exact = s->repeats && s->exact;
    return 0;
}

int eval_needle(Model *m, const Passkey *pk, Needle *g, char *err) {
    int maxT = 0;
    long long work = 0, done_work = 0, n_cells = (long long)g->n_hay * g->n_lengths * g->n_depths, done = 0;
    for (int l = 0; l < g->n_lengths; l++) {
        int T = g->lengths[l];
        if (T < pk->overhead) return encoding_error(err, "length %d is shorter than the needle and question (%d tokens)", T, pk->overhead);
        if (check_fits(m, T, g->shift, "a prompt", err)) return -1;
        maxT = T > maxT ? T : maxT;
        work += (long long)T * g->trials * g->n_depths * g->n_hay;
    }
    for (int h = 0; h < g->n_hay; h++)
        if (g->hay[h] == HAY_CORPUS && (!pk->corpus || pk->corpus->n < (size_t)(maxT - pk->overhead)))
            return encoding_error(err, "the corpus haystack of a %d-token prompt needs %d tokens of text, the text has %zu", maxT,
                        maxT - pk->overhead, pk->corpus ? pk->corpus->n : (size_t)0);
    g->cell = calloc((size_t)n_cells, sizeof *g->cell);
    g->dist = calloc((size_t)g->n_hay * g->n_lengths * NEEDLE_BINS, sizeof *g->dist);
    int *ids = malloc((size_t)maxT * sizeof *ids);
    float *logits = malloc((size_t)5 * m->c.vocab_size * sizeof *logits);
    int rc = g->cell && g->dist && ids && logits ? 0 : encoding_error(err, "out of memory for the needle grid");
    Progress pr = {now_s(), 0, 0};
    for (int h = 0; h < g->n_hay && !rc; h++)
        for (int l = 0; l < g->n_lengths && !rc; l++)
            for (int d = 0; d < g->n_depths && !rc; d++) {
                int T = g->lengths[l];
                double depth = needle_depth(g, d);
                for (int t = 0; t < g->trials && !rc; t++) {
                    Rng rng;
                    PasskeyInfo info;
                    NeedleStat s;
                    rng_seed(&rng, needle_seed(g->seed, g->hay[h], T, depth, t));
                    rc = passkey_at_depth(pk, g->hay[h], T, depth, &rng, ids, &info, err) || trial(m, ids, T, g->shift, g->keep, logits, &s, err);
                    if (rc) break;
                    needle_stat_add(cell(g, h, l, d), &s);
                    int k = 0;
                    while (k + 1 < NEEDLE_BINS && 2LL << k <= info.answer - info.key) k++;
                    needle_stat_add(dist(g, h, l, k), &s);
                }
                done_work += (long long)T * g->trials;
                progress(&pr, g->tag, "needle cells", ++done, n_cells, (double)done_work / work);
            }
    free(ids);
    free(logits);
    if (rc) needle_free(g);
    return rc ? -1 : 0;
}

void needle_free(Needle *g) {
    free(g->cell);
    free(g->dist);
    g->cell = g->dist = NULL;
}

static double ratio(int part, int whole) { return whole ? (double)part / whole : NAN; }
static double acc(const NeedleStat *s) { return ratio(s->exact, s->trials); }

/* a whole column (one haystack, one length) pooled over depths */
static NeedleStat column(const Needle *g, int h, int l) {
    NeedleStat s = {0};
    for (int d = 0; d < g->n_depths; d++) needle_stat_add(&s, cell(g, h, l, d));
    return s;
}

void needle_print(const Needle *g, FILE *out) {
    fprintf(out, "model %s\nneedle in a haystack: %d haystack(s) x %d lengths x %d depths x %d trials, seed %llu (-s %llu reruns it)\n"
                 "score: exact match of the 5-digit key under teacher forcing (= greedy decoding); chance 1e-5 exact, 0.1 per digit\n"
                 "rows under the grid: exact match over all keys, over keys of 5 distinct digits (30%% of keys) and over keys that\n"
                 "repeat a digit (70%%; '-': none drawn), the share of right digits, the mean log-probability of the key (nats)\n",
            g->model, g->n_hay, g->n_lengths, g->n_depths, g->trials, (unsigned long long)g->seed, (unsigned long long)g->seed);
    for (int h = 0; h < g->n_hay; h++) {
        fprintf(out, "\n%s haystack, exact-match accuracy\n%-12s", HAY_NAME[g->hay[h]], "depth");
        for (int l = 0; l < g->n_lengths; l++) fprintf(out, " %7d", g->lengths[l]);
        for (int d = 0; d < g->n_depths; d++) {
            char depth[16];
            snprintf(depth, sizeof depth, "%.4g%%", 100 * needle_depth(g, d));
            fprintf(out, "\n%-12s", depth);
            for (int l = 0; l < g->n_lengths; l++) fprintf(out, " %7.2f", acc(cell(g, h, l, d)));
        }
        const char *rows[] = {"exact", "distinct", "repeated", "digits", "log p(key)"};
        int context = 0;
        for (int r = 0; r < 5; r++) {
            fprintf(out, "\n%-12s", rows[r]);
            for (int l = 0; l < g->n_lengths; l++) {
                NeedleStat s = column(g, h, l);
                double v = r == 0 ? acc(&s) : r == 1 ? ratio(s.exact - s.repeats_exact, s.trials - s.repeats) : r == 2 ? ratio(s.repeats_exact, s.repeats)
                         : r == 3 ? s.digits / (5.0 * s.trials) : s.logp / s.trials;
                if (isnan(v)) fprintf(out, " %7s", "-");
                else fprintf(out, " %7.2f", v);
                if (acc(&s) >= 0.8 && g->lengths[l] > context) context = g->lengths[l];
            }
        }
        fprintf(out, "\npasskey context (longest length with exact >= 80%%): ");
        if (context) fprintf(out, "%d\n", context);
        else fprintf(out, "none\n");
    }
}

static void stat_csv(FILE *f, const NeedleStat *s, uint64_t seed) {
    fprintf(f, "%d,%d,%.8g,%.8g,%.8g,%d,%d,%llu\n", s->trials, s->exact, acc(s), s->digits / (5.0 * s->trials), s->logp / s->trials,
            s->repeats, s->repeats_exact, (unsigned long long)seed);
}

void needle_csv(const Needle *g, FILE *f) {
    fprintf(f, "haystack,length,depth_pct,trials,exact,exact_acc,digit_acc,mean_logp_key,repeat_trials,repeat_exact,seed\n");
    for (int h = 0; h < g->n_hay; h++)
        for (int l = 0; l < g->n_lengths; l++)
            for (int d = 0; d < g->n_depths; d++) {
                fprintf(f, "%s,%d,%.6g,", HAY_NAME[g->hay[h]], g->lengths[l], 100 * needle_depth(g, d));
                stat_csv(f, cell(g, h, l, d), g->seed);
            }
}

void needle_distance_csv(const Needle *g, FILE *f) {
    fprintf(f, "haystack,length,distance_lo,distance_hi,trials,exact,exact_acc,digit_acc,mean_logp_key,repeat_trials,repeat_exact,seed\n");
    for (int h = 0; h < g->n_hay; h++)
        for (int l = 0; l < g->n_lengths; l++)
            for (int k = 0; k < NEEDLE_BINS; k++)
                if (dist(g, h, l, k)->trials) {
                    fprintf(f, "%s,%d,%lld,%lld,", HAY_NAME[g->hay[h]], g->lengths[l], 1LL << k, 2LL << k);
                    stat_csv(f, dist(g, h, l, k), g->seed);
                }
}

/* ---- SVG: fixed-size charts, text escaped, a <title> on every mark for hover ---- */

enum { SVG_W = 960, SVG_H = 480 };


/* printf into a buffer, then XML-escaped to f; bytes outside printable ASCII become '?' (a path may hold
   control bytes, which XML forbids, or invalid UTF-8) */
static void svg_escaped(FILE *f, const char *fmt, va_list ap) {
    char buf[512];
    vsnprintf(buf, sizeof buf, fmt, ap);
    for (const char *c = buf; *c; c++) {
        const char *e = *c == '&' ? "&amp;" : *c == '<' ? "&lt;" : *c == '>' ? "&gt;" : *c == '"' ? "&quot;" : NULL;
        if (e) fputs(e, f);
        else fputc(*c >= 0x20 && *c < 0x7F ? *c : '?', f);
    }
}

/* anchor: start, middle or end; rot: rotated -90 degrees about (x, y) for a vertical axis label */
static void svg_text(FILE *f, double x, double y, const char *anchor, int rot, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\"", x, y, anchor);
    if (rot) fprintf(f, " transform=\"rotate(-90 %.1f %.1f)\"", x, y);
    fputc('>', f);
    svg_escaped(f, fmt, ap);
    fputs("</text>\n", f);
    va_end(ap);
}

static void svg_title(FILE *f, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("<title>", f);
    svg_escaped(f, fmt, ap);
    fputs("</title>", f);
    va_end(ap);
}


/* the document's title (for viewers) and the model's description, top left */
static void svg_begin(FILE *f, const char *title, const char *model) {
    fprintf(f, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
               "viewBox=\"0 0 %d %d\" font-family=\"sans-serif\" font-size=\"12\">\n", SVG_W, SVG_H, SVG_W, SVG_H);
    svg_title(f, "%s", title);
    fputs("\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n", f);
    svg_text(f, 8, 16, "start", 0, "%s", model);
}

static int imin(int a, int b) { return a < b ? a : b; }
static int imax(int a, int b) { return a > b ? a : b; }

/* gkamradt's colormap: #F0496E (0) -> #EBB839 (0.5) -> #0CD79F (1) */
static const int STOPS[3] = {0xF0496E, 0xEBB839, 0x0CD79F};

static void colour(double v, char out[8]) {
    v = v > 0 ? v < 1 ? v : 1 : 0;
    int i = v < 0.5 ? 0 : 1, rgb = 0;
    double t = 2 * v - i;
    for (int sh = 16; sh >= 0; sh -= 8) {
        int a = STOPS[i] >> sh & 255, b = STOPS[i + 1] >> sh & 255;
        rgb |= (int)lround(a + t * (b - a)) << sh;
    }
    snprintf(out, 8, "#%06X", rgb);
}

void needle_heatmap_svg(const Needle *g, FILE *f) {
    const double top = 56, ph = 360, panel = (SVG_W - 110.0) / g->n_hay, pw = panel - 90;
    svg_begin(f, "Needle in a haystack: exact-match accuracy by context length and depth", g->model);
    for (int h = 0; h < g->n_hay; h++) {
        double x0 = 80 + h * panel, cw = pw / g->n_lengths, ch = ph / g->n_depths;
        int xstep = (int)ceil(40 / cw), ystep = (int)ceil(14 / ch);   /* skip tick labels that would overlap */
        int lo = INT_MAX, hi = 0;   /* a merged grid (the study's) may have fewer trials at long lengths */
        for (int l = 0; l < g->n_lengths; l++)
            for (int d = 0; d < g->n_depths; d++)
                if (cell(g, h, l, d)->trials) { lo = imin(lo, cell(g, h, l, d)->trials); hi = imax(hi, cell(g, h, l, d)->trials); }
        if (lo == hi) svg_text(f, x0 + pw / 2, top - 16, "middle", 0, "%s haystack, %d trials per cell", HAY_NAME[g->hay[h]], hi);
        else svg_text(f, x0 + pw / 2, top - 16, "middle", 0, "%s haystack, %d-%d trials per cell", HAY_NAME[g->hay[h]], lo, hi);
        for (int l = 0; l < g->n_lengths; l++)
            for (int d = 0; d < g->n_depths; d++) {
                const NeedleStat *s = cell(g, h, l, d);
                char c[8] = "#CCCCCC";   /* grey: not run (a length the encoding cannot represent) */
                if (s->trials) colour(acc(s), c);
                fprintf(f, "<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" stroke=\"white\" stroke-width=\"0.5\">",
                        x0 + l * cw, top + d * ch, cw, ch, c);
                if (s->trials)
                    svg_title(f, "%s, length %d, depth %.4g%%: %d/%d exact (keys that repeat a digit %d/%d), digits %.0f%%, mean log p(key) %.2f",
                              HAY_NAME[g->hay[h]], g->lengths[l], 100 * needle_depth(g, d), s->exact, s->trials, s->repeats_exact, s->repeats,
                              100 * s->digits / (5.0 * s->trials), s->logp / s->trials);
                else svg_title(f, "%s, length %d, depth %.4g%%: not run", HAY_NAME[g->hay[h]], g->lengths[l], 100 * needle_depth(g, d));
                fputs("</rect>\n", f);
            }
        for (int l = 0; l < g->n_lengths; l += xstep) svg_text(f, x0 + (l + 0.5) * cw, top + ph + 16, "middle", 0, "%d", g->lengths[l]);
        for (int d = 0; d < g->n_depths; d += ystep)
            svg_text(f, x0 - 6, top + (d + 0.5) * ch + 4, "end", 0, "%.4g", 100 * needle_depth(g, d));
        svg_text(f, x0 + pw / 2, top + ph + 40, "middle", 0, "Context length (tokens)");
        svg_text(f, x0 - 44, top + ph / 2, "middle", 1, "Depth %%");
    }
    /* the colour scale: 1 at the top */
    double lx = SVG_W - 70;
    fprintf(f, "<defs><linearGradient id=\"scale\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">");
    for (int i = 0; i < 3; i++) fprintf(f, "<stop offset=\"%d%%\" stop-color=\"#%06X\"/>", 50 * i, STOPS[i]);
    fprintf(f, "</linearGradient></defs>\n<rect x=\"%.1f\" y=\"%.1f\" width=\"16\" height=\"%.1f\" fill=\"url(#scale)\"/>\n", lx, top, ph);
    for (int i = 0; i <= 4; i++) svg_text(f, lx + 22, top + ph * (1 - i / 4.0) + 4, "start", 0, "%.2g", i / 4.0);
    svg_text(f, lx - 8, top + ph / 2, "middle", 1, "Accuracy (exact match)");
    fputs("</svg>\n", f);
}

void needle_distance_svg(const Needle *g, FILE *f) {
    static const char *const PALETTE[] = {"#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F", "#EDC948", "#B07AA1", "#9C755F"};
    const double x0 = 70, top = 52, pw = 700, ph = 370;
    int kmin = NEEDLE_BINS, kmax = 0;
    for (int h = 0; h < g->n_hay; h++)
        for (int l = 0; l < g->n_lengths; l++)
            for (int k = 0; k < NEEDLE_BINS; k++)
                if (dist(g, h, l, k)->trials) { kmin = k < kmin ? k : kmin; kmax = k > kmax ? k : kmax; }
    if (kmin > kmax) kmin = kmax = 0;
    double span = kmax + 1 - kmin;   /* x: log2 of the distance, from bin edge 2^kmin to 2^(kmax+1) */
#define X(lg) (x0 + ((lg) - kmin) / span * pw)
#define Y(a) (top + (1 - (a)) * ph)
    svg_begin(f, "Needle in a haystack: exact-match accuracy by needle-to-question distance", g->model);
    svg_text(f, x0 + pw / 2, top - 16, "middle", 0, "Accuracy by needle-to-question distance (log2 bins), one curve per total length");
    for (int i = 0; i <= 5; i++) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, Y(i / 5.0), x0 + pw, Y(i / 5.0));
        svg_text(f, x0 - 6, Y(i / 5.0) + 4, "end", 0, "%.1f", i / 5.0);
    }
    for (int k = kmin; k <= kmax + 1; k++) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", X(k), top, X(k), top + ph);
        svg_text(f, X(k), top + ph + 16, "middle", 0, "%lld", 1LL << k);
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", x0, top, pw, ph);
    svg_text(f, x0 + pw / 2, top + ph + 40, "middle", 0, "Needle-to-question distance (tokens, answer - key)");
    svg_text(f, x0 - 44, top + ph / 2, "middle", 1, "Accuracy (exact match)");
    for (int h = 0; h < g->n_hay; h++)
        for (int l = 0; l < g->n_lengths; l++) {
            const char *c = PALETTE[l % 8];
            fprintf(f, "<g class=\"curve\"><polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", c,
                    g->hay[h] == HAY_CORPUS ? " stroke-dasharray=\"6 4\"" : "");
            for (int k = kmin; k <= kmax; k++)
                if (dist(g, h, l, k)->trials) fprintf(f, "%.1f,%.1f ", X(k + 0.5), Y(acc(dist(g, h, l, k))));
            fputs("\"/>\n", f);
            for (int k = kmin; k <= kmax; k++) {
                const NeedleStat *s = dist(g, h, l, k);
                if (!s->trials) continue;
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\">", X(k + 0.5), Y(acc(s)), c);
                svg_title(f, "%s, length %d, distance [%lld, %lld): %d/%d exact", HAY_NAME[g->hay[h]], g->lengths[l], 1LL << k, 2LL << k,
                          s->exact, s->trials);
                fputs("</circle>\n", f);
            }
            fputs("</g>\n", f);
        }
    /* legend: a colour per length, solid for the filler haystack, dashed for the corpus */
    double lx = x0 + pw + 20;
    for (int l = 0; l < g->n_lengths; l++) {
        double y = top + 10 + 18 * l;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", lx, y, lx + 24, y,
                PALETTE[l % 8]);
        svg_text(f, lx + 30, y + 4, "start", 0, "%d tokens", g->lengths[l]);
    }
    for (int h = 0; h < g->n_hay; h++) {
        double y = top + 10 + 18 * (g->n_lengths + 1 + h);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" stroke-width=\"2\"%s/>\n", lx, y, lx + 24, y,
                g->hay[h] == HAY_CORPUS ? " stroke-dasharray=\"6 4\"" : "");
        svg_text(f, lx + 30, y + 4, "start", 0, "%s", HAY_NAME[g->hay[h]]);
    }
#undef X
#undef Y
    fputs("</svg>\n", f);
}

void lines_svg(FILE *f, const char *title, const char *model, const char *xlabel, const char *ylabel, const Series *series, int n) {
    static const char *const PALETTE[] = {"#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F", "#EDC948", "#B07AA1", "#FF9DA7",
                                          "#9C755F", "#BAB0AC", "#1B9E77", "#D95F02", "#7570B3", "#E7298A"};
    const double x0 = 70, top = 52, pw = 600, ph = 370;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < series[i].n; j++)
            if (isfinite(series[i].y[j]) && series[i].x[j] > 0) {
                xlo = fmin(xlo, log2(series[i].x[j])); xhi = fmax(xhi, log2(series[i].x[j]));
                ylo = fmin(ylo, series[i].y[j]); yhi = fmax(yhi, series[i].y[j]);
            }
    if (!(xlo <= xhi)) xlo = 0, xhi = 1, ylo = 0, yhi = 1;
    xlo = floor(xlo); xhi = ceil(xhi) > xlo ? ceil(xhi) : xlo + 1;
    double ystep = pow(10, floor(log10(fmax(yhi - ylo, 1e-9)))) / 2;   /* y from the data, in round steps */
    ylo = floor(ylo / ystep) * ystep; yhi = ceil(yhi / ystep) * ystep;
    if (yhi <= ylo) yhi = ylo + ystep;
    while ((yhi - ylo) / ystep > 10) ystep *= 2;
#define X(v) (x0 + (log2(v) - xlo) / (xhi - xlo) * pw)
#define Y(v) (top + (yhi - (v)) / (yhi - ylo) * ph)
    svg_begin(f, title, model);
    svg_text(f, x0 + pw / 2, top - 16, "middle", 0, "%s", title);
    for (double v = ylo; v <= yhi + ystep / 2; v += ystep) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", x0, Y(v), x0 + pw, Y(v));
        svg_text(f, x0 - 6, Y(v) + 4, "end", 0, "%.3g", v);
    }
    for (double e = xlo; e <= xhi; e++) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", X(exp2(e)), top, X(exp2(e)), top + ph);
        svg_text(f, X(exp2(e)), top + ph + 16, "middle", 0, "%g", exp2(e));
    }
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", x0, top, pw, ph);
    svg_text(f, x0 + pw / 2, top + ph + 40, "middle", 0, "%s", xlabel);
    svg_text(f, x0 - 50, top + ph / 2, "middle", 1, "%s", ylabel);
    for (int i = 0; i < n; i++) {
        const Series *s = &series[i];
        const char *c = PALETTE[i % 14], *dash = i >= 14 ? " stroke-dasharray=\"6 4\"" : "";
        fprintf(f, "<g class=\"series\"><polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\"%s points=\"", c, dash);
        for (int j = 0; j < s->n; j++) if (isfinite(s->y[j]) && s->x[j] > 0) fprintf(f, "%.1f,%.1f ", X(s->x[j]), Y(s->y[j]));
        fputs("\"/>\n", f);
        for (int j = 0; j < s->n; j++) {
            if (!isfinite(s->y[j]) || s->x[j] <= 0) continue;
            fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\">", X(s->x[j]), Y(s->y[j]), c);
            svg_title(f, "%s: %g, %.4g", s->label, s->x[j], s->y[j]);
            fputs("</circle>\n", f);
        }
        fputs("</g>\n", f);
        double ly = top + 10 + 18 * i;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"%s/>\n", x0 + pw + 16, ly,
                x0 + pw + 40, ly, c, dash);
        svg_text(f, x0 + pw + 46, ly + 4, "start", 0, "%s", s->label);
    }
#undef X
#undef Y
    fputs("</svg>\n", f);
}
