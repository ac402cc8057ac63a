/* The ./run command line, end to end: the binary under test ($RUN_BINARY) is run with an argv array
   (fork/execv, no shell), its stdout and stderr captured in files, under a timeout. Every bad input
   must end in a "clean error": a normal exit with a non-zero status and exactly one stderr line that
   starts with "error: " and names the problem (a sanitizer report, a crash or a second line is not
   clean). The happy paths check the output: the prompt echo, the logits dump format against a
   llama.cpp fixture, chunking, determinism and the context shift. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "gguf.h"
#include "tests/test.h"
#include "tests/testmodel.h"

#ifndef CLI_TIMEOUT_S
#define CLI_TIMEOUT_S 60.0   /* seconds before the child is killed */
#endif
#define MAX_ARGS 40
#define UNTRAINED "models/untrained-rope.gguf"

/* ------------------------------------------------------------------------------------------ */
/* running the binary */

typedef struct {
    const char *prog;         /* the binary run */
    int started;              /* fork and exec worked */
    int exited, status;       /* WIFEXITED, WEXITSTATUS */
    int signaled, sig;        /* WIFSIGNALED, WTERMSIG */
    int timed_out;            /* killed after CLI_TIMEOUT_S */
    char *out, *err;          /* NUL-terminated copies (the text may hold NULs: use the lengths) */
    size_t out_len, err_len;
} Proc;

static int seq;

static char *read_file_all(const char *path, size_t *len) {
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf) {
        if (n == cap) {
            char *nb = realloc(buf, (cap *= 2) + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    *len = n;
    return buf;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Runs the program prog with args (NULL-terminated, not counting argv[0]). */
static Proc run_prog(const char *prog, const char *const *args) {
    Proc p;
    memset(&p, 0, sizeof p);
    p.prog = prog;
    char out_path[600], err_path[600];
    int id = seq++;
    snprintf(out_path, sizeof out_path, "%s/cli-%ld-%d.out", test_tmp_dir, (long)getpid(), id);
    snprintf(err_path, sizeof err_path, "%s/cli-%ld-%d.err", test_tmp_dir, (long)getpid(), id);
    char *argv[MAX_ARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)prog;
    for (int i = 0; args[i] && argc < MAX_ARGS + 1; i++) argv[argc++] = (char *)args[i];
    argv[argc] = NULL;

    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) return p;
    if (pid == 0) {   /* only async-signal-safe calls until exec */
        setpgid(0, 0);   /* its own process group: a timeout kills whatever it started too */
        int fo = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fe = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int fi = open("/dev/null", O_RDONLY);
        if (fo < 0 || fe < 0 || fi < 0) _exit(126);
        dup2(fi, 0);
        dup2(fo, 1);
        dup2(fe, 2);
        close(fi); close(fo); close(fe);
        execv(prog, argv);
        static const char msg[] = "test_cli: execv failed\n";
        ssize_t w = write(2, msg, sizeof msg - 1);
        (void)w;
        _exit(127);
    }
    int st = 0;
    double t0 = now_s();
    long nap_ns = 100000;   /* 0.1 ms, growing to 5 ms */
    for (;;) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) break;
        if (r < 0 && errno != EINTR) { kill(-pid, SIGKILL); kill(pid, SIGKILL); waitpid(pid, &st, 0); return p; }
        if (now_s() - t0 > CLI_TIMEOUT_S) {
            kill(-pid, SIGKILL);
            kill(pid, SIGKILL);   /* in case it had not reached setpgid yet */
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
            p.timed_out = 1;
            break;
        }
        struct timespec nap = {0, nap_ns};
        nanosleep(&nap, NULL);
        if (nap_ns < 5000000) nap_ns *= 2;
    }
    p.started = 1;
    p.exited = WIFEXITED(st);
    p.status = p.exited ? WEXITSTATUS(st) : -1;
    p.signaled = WIFSIGNALED(st);
    p.sig = p.signaled ? WTERMSIG(st) : 0;
    p.out = read_file_all(out_path, &p.out_len);
    p.err = read_file_all(err_path, &p.err_len);
    if (!p.out) p.out = calloc(1, 1);
    if (!p.err) p.err = calloc(1, 1);
    unlink(out_path);
    unlink(err_path);
    return p;
}

static Proc run_cli(const char *const *args) { return run_prog(test_run_binary, args); }

static void proc_free(Proc *p) {
    free(p->out);
    free(p->err);
    p->out = p->err = NULL;
}

/* "exit 1, stderr: ..." with the first few hundred bytes of stderr, newlines shown as \n */
static const char *describe(const Proc *p) {
    static char buf[900];
    int n;
    if (!p->started) n = snprintf(buf, sizeof buf, "could not run %s", p->prog);
    else if (p->timed_out) n = snprintf(buf, sizeof buf, "timed out after %.0f s", CLI_TIMEOUT_S);
    else if (p->signaled) n = snprintf(buf, sizeof buf, "killed by signal %d", p->sig);
    else n = snprintf(buf, sizeof buf, "exit %d", p->status);
    n += snprintf(buf + n, sizeof buf - n, ", %zu stdout bytes, stderr (%zu bytes): \"", p->out_len, p->err_len);
    for (size_t i = 0; i < p->err_len && n < (int)sizeof buf - 12; i++) {
        unsigned char c = (unsigned char)p->err[i];
        if (c == '\n') n += snprintf(buf + n, sizeof buf - n, "\\n");
        else if (c < 32 || c > 126) n += snprintf(buf + n, sizeof buf - n, "\\x%02x", c);
        else buf[n++] = (char)c;
    }
    if (n > (int)sizeof buf - 12) n = (int)sizeof buf - 12;
    snprintf(buf + n, sizeof buf - n, "%s\"", n >= (int)sizeof buf - 13 ? "..." : "");
    return buf;
}

/* stderr is one non-empty line "error: ...\n" (or without the '\n') */
static int one_error_line(const Proc *p) {
    if (p->err_len <= 7 || strlen(p->err) != p->err_len || strncmp(p->err, "error: ", 7)) return 0;
    const char *nl = strchr(p->err, '\n');
    return !nl || nl == p->err + p->err_len - 1;
}

/* The case must end in a clean error whose message contains `word`, with nothing on stdout. */
static void expect_prog_error(const char *prog, const char *name, const char *word, const char *const *args) {
    Proc p = run_prog(prog, args);
    int normal_exit = p.started && !p.timed_out && p.exited;
    CHECK(normal_exit, "[%s] should exit normally with an error: %s", name, describe(&p));
    CHECK(!normal_exit || p.status != 0, "[%s] bad input accepted (exit 0): %s", name, describe(&p));
    CHECK(one_error_line(&p), "[%s] stderr should be exactly one line starting 'error: ': %s", name, describe(&p));
    CHECK(strstr(p.err, word) != NULL, "[%s] the error should mention '%s': %s", name, word, describe(&p));
    CHECK(p.out_len == 0, "[%s] an error before any output should print nothing on stdout, got %zu bytes", name, p.out_len);
    proc_free(&p);
}

static void expect_error_argv(const char *name, const char *word, const char *const *args) {
    expect_prog_error(test_run_binary, name, word, args);
}

/* ------------------------------------------------------------------------------------------ */
/* paths and case tables: "@L" llama-rope, "@G" gpt2-learned, "@B" bloom-alibi, "@U" the shipped
   untrained model, "@D" a dump file in the scratch directory */

static char path_llama[512], path_gpt2[512], path_bloom[512], path_dump[600];

static void init_paths(void) {
    snprintf(path_llama, sizeof path_llama, "%s/llama-rope/model.gguf", test_fixtures_dir);
    snprintf(path_gpt2, sizeof path_gpt2, "%s/gpt2-learned/model.gguf", test_fixtures_dir);
    snprintf(path_bloom, sizeof path_bloom, "%s/bloom-alibi/model.gguf", test_fixtures_dir);
    snprintf(path_dump, sizeof path_dump, "%s/cli-%ld-dump.f32", test_tmp_dir, (long)getpid());
    mkdir(test_tmp_dir, 0755);
}

static const char *expand(const char *a) {
    if (!strcmp(a, "@L")) return path_llama;
    if (!strcmp(a, "@G")) return path_gpt2;
    if (!strcmp(a, "@B")) return path_bloom;
    if (!strcmp(a, "@U")) return UNTRAINED;
    if (!strcmp(a, "@D")) return path_dump;
    return a;
}

typedef struct {
    const char *name, *word;
    const char *args[16];   /* NULL-terminated */
} ErrCase;

static void run_error_cases(const ErrCase *cases, int n) {
    for (int i = 0; i < n; i++) {
        const char *argv[17];
        int k = 0;
        for (; cases[i].args[k]; k++) argv[k] = expand(cases[i].args[k]);
        argv[k] = NULL;
        expect_error_argv(cases[i].name, cases[i].word, argv);
    }
    unlink(path_dump);
}

#define N_OF(a) (int)(sizeof(a) / sizeof((a)[0]))

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static long file_size(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* reads a whole float32 dump; NULL if missing */
static float *read_floats(const char *path, size_t *n) {
    size_t len;
    char *bytes = read_file_all(path, &len);
    *n = 0;
    if (!bytes) return NULL;
    *n = len / 4;
    float *f = malloc(*n * sizeof *f + 1);
    if (f) memcpy(f, bytes, *n * sizeof *f);
    free(bytes);
    return f;
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (!(d <= worst)) worst = d;   /* NaN wins */
    }
    return worst;
}

/* "generate: N tokens" / "prefill: N tokens" from the stats line, or -1 */
static int stat_count(const char *err, const char *key) {
    const char *s = strstr(err, key);
    int n;
    if (!s || sscanf(s + strlen(key), "%d tokens", &n) != 1) return -1;
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* bad input */

static void test_cli_binary_present(void) {
    CHECK(access(test_run_binary, X_OK) == 0, "RUN_BINARY %s is not an executable file", test_run_binary);
    CHECK(file_exists(path_llama), "fixture %s is missing (FIXTURES=%s)", path_llama, test_fixtures_dir);
    CHECK(file_exists(UNTRAINED), "%s is missing (run from the project root)", UNTRAINED);
}

static void test_cli_malformed_flags(void) {
    static const ErrCase cases[] = {
        {"no arguments", "model file", {NULL}},
        {"first argument a flag", "model file", {"-n", "5", NULL}},
        {"first argument a flag, alone", "model file", {"-i", NULL}},
        {"unknown flag -zzz", "unknown flag -zzz", {"@L", "-zzz", "1", NULL}},
        {"unknown flag -zzz at the end", "-zzz", {"@L", "-zzz", NULL}},
        {"stray positional argument", "unexpected argument 'extra'", {"@L", "extra", NULL}},
        {"-n missing its value", "-n needs a value", {"@L", "-n", NULL}},
        {"-dump missing its value", "-dump needs a value", {"@L", "-m", "logits", "-tokens", "1", "-dump", NULL}},
        {"-n abc", "-n expects", {"@L", "-n", "abc", NULL}},
        {"-n empty", "-n expects", {"@L", "-n", "", NULL}},
        {"-t 1x", "-t expects", {"@L", "-t", "1x", NULL}},
        {"-ctx 12.5", "-ctx expects", {"@L", "-ctx", "12.5", NULL}},
        {"-p nan", "-p expects", {"@L", "-p", "nan", NULL}},
        {"-t inf", "-t expects", {"@L", "-t", "inf", NULL}},
        {"-t nan", "-t expects", {"@L", "-t", "nan", NULL}},
        {"-scale 0x", "-scale expects", {"@L", "-scale", "0x", NULL}},
        {"-s abc", "-s expects", {"@L", "-s", "abc", NULL}},
        {"-s -1", "-s expects", {"@L", "-s", "-1", NULL}},
        {"-ctx 0", "-ctx expects", {"@L", "-ctx", "0", NULL}},
        {"-ctx -5", "-ctx expects", {"@L", "-ctx", "-5", NULL}},
        {"-ctx 99999999999", "-ctx expects", {"@L", "-ctx", "99999999999", NULL}},
        {"-ctx 99999999999999999999999 (overflows long)", "-ctx expects", {"@L", "-ctx", "99999999999999999999999", NULL}},
        {"-p 1.5", "-p expects", {"@L", "-p", "1.5", NULL}},
        {"-p -0.1", "-p expects", {"@L", "-p", "-0.1", NULL}},
        {"-t -1", "-t expects", {"@L", "-t", "-1", NULL}},
        {"-n -1", "-n expects", {"@L", "-n", "-1", NULL}},
        {"-th 0", "-th expects", {"@L", "-th", "0", NULL}},
        {"-scale 0", "-scale expects", {"@L", "-scale", "0", NULL}},
        {"-scale -2", "-scale expects", {"@L", "-scale", "-2", NULL}},
        {"-rope-base 1", "-rope-base expects", {"@L", "-rope-base", "1", NULL}},
        {"-yarn-ext 2", "-yarn-ext expects", {"@L", "-yarn-ext", "2", NULL}},
        {"-chunk 0", "-chunk expects", {"@L", "-chunk", "0", NULL}},
        {"-pos0 -1", "-pos0 expects", {"@L", "-pos0", "-1", NULL}},
        {"-keep -1", "-keep expects", {"@L", "-keep", "-1", NULL}},
        {"-orig-ctx 0", "-orig-ctx expects", {"@L", "-orig-ctx", "0", NULL}},
        {"-alibi-max-bias 0", "-alibi-max-bias expects", {"@B", "-alibi-max-bias", "0", NULL}},
        {"-rope-dims 3 (odd)", "rotary dims", {"@L", "-rope-dims", "3", NULL}},
        {"unknown mode -m foo", "unknown mode 'foo'", {"@L", "-m", "foo", NULL}},
        {"-m logits without -tokens", "-tokens", {"@L", "-m", "logits", "-dump", "@D", NULL}},
        {"-m logits without -dump", "-dump", {"@L", "-m", "logits", "-tokens", "1,2", NULL}},
        {"-tokens in generate mode", "-m logits", {"@L", "-tokens", "1,2", NULL}},
        {"-rope-layout sideways", "-rope-layout", {"@L", "-rope-layout", "sideways", NULL}},
        {"-kv q4", "-kv expects f32 or f16, got 'q4'", {"@L", "-kv", "q4", NULL}},
        {"-kv f16 with -pe dynamic", "-kv f16 does not combine with -pe dynamic", {"@L", "-kv", "f16", "-pe", "dynamic", NULL}},
        {"-dyn-kv sometimes", "-dyn-kv expects exact or stale, got 'sometimes'", {"@L", "-pe", "dynamic", "-dyn-kv", "sometimes", NULL}},
        {"-pe unknown", "'bogus'", {"@L", "-pe", "bogus", NULL}},
        {"-keep not below -ctx", "-keep", {"@U", "-ctx", "16", "-keep", "16", "-i", "a", NULL}},
        {"-dump into a missing directory", "cannot write", {"@L", "-m", "logits", "-tokens", "1", "-dump", "/nonexistent-dir/x.f32", NULL}},
    };
    run_error_cases(cases, N_OF(cases));
}

static void test_cli_bad_tokens(void) {
    static const ErrCase cases[] = {
        {"-tokens 1,,2", "-tokens", {"@L", "-m", "logits", "-tokens", "1,,2", "-dump", "@D", NULL}},
        {"-tokens 1,a", "-tokens", {"@L", "-m", "logits", "-tokens", "1,a", "-dump", "@D", NULL}},
        {"-tokens -3", "-tokens", {"@L", "-m", "logits", "-tokens", "-3", "-dump", "@D", NULL}},
        {"-tokens empty string", "-tokens", {"@L", "-m", "logits", "-tokens", "", "-dump", "@D", NULL}},
        {"-tokens 5, (trailing comma)", "-tokens", {"@L", "-m", "logits", "-tokens", "5,", "-dump", "@D", NULL}},
        {"-tokens ,5 (leading comma)", "-tokens", {"@L", "-m", "logits", "-tokens", ",5", "-dump", "@D", NULL}},
        {"-tokens 1;2", "-tokens", {"@L", "-m", "logits", "-tokens", "1;2", "-dump", "@D", NULL}},
        {"-tokens 99999999999 (past int)", "-tokens", {"@L", "-m", "logits", "-tokens", "99999999999", "-dump", "@D", NULL}},
        {"-tokens 999 on a 512-token vocabulary", "vocabulary", {"@L", "-m", "logits", "-tokens", "1,999", "-dump", "@D", NULL}},
        {"-tokens 512 on a 512-token vocabulary", "vocabulary", {"@L", "-m", "logits", "-tokens", "512", "-dump", "@D", NULL}},
    };
    run_error_cases(cases, N_OF(cases));
}

/* ------------------------------------------------------------------------------------------ */
/* flags that do not fit the model's encoding */

static void test_cli_encoding_mismatch(void) {
    static const ErrCase cases[] = {
        {"-pe yarn on bloom-alibi", "-pe yarn does not apply", {"@B", "-pe", "yarn", NULL}},
        {"-pe alibi on llama", "-pe alibi does not apply", {"@L", "-pe", "alibi", NULL}},
        {"-pe rope on gpt2", "-pe rope does not apply", {"@G", "-pe", "rope", NULL}},
        {"-pe learned on llama", "-pe learned does not apply", {"@L", "-pe", "learned", NULL}},
        {"-scale on a learned-position model", "-scale applies to RoPE and ALiBi", {"@G", "-scale", "2", NULL}},
        {"-orig-ctx on a learned-position model", "-orig-ctx applies to RoPE and ALiBi", {"@G", "-orig-ctx", "64", NULL}},
        {"-scale on plain ALiBi", "-pe alibi-pi", {"@B", "-scale", "2", NULL}},
        {"-orig-ctx on plain ALiBi", "-orig-ctx needs a scaling method: -pe alibi-pi", {"@B", "-orig-ctx", "64", NULL}},
        {"-pe alibi-pi on a RoPE model", "family is rope", {"@L", "-pe", "alibi-pi", NULL}},
        {"-pe none-logn on a RoPE model", "family is rope", {"@L", "-pe", "none-logn", NULL}},
        {"-yarn-beta-fast on gpt2", "-yarn-beta-fast applies to RoPE", {"@G", "-yarn-beta-fast", "16", NULL}},
        {"-rope-base on gpt2", "-rope-base applies to RoPE", {"@G", "-rope-base", "500", NULL}},
        {"-alibi-max-bias on llama", "-alibi-max-bias applies to ALiBi", {"@L", "-alibi-max-bias", "4", NULL}},
        {"-scale with plain -pe rope", "scaling method", {"@L", "-pe", "rope", "-scale", "4", NULL}},
        {"-scale on a plain RoPE file without -pe", "scaling method", {"@L", "-scale", "4", NULL}},
        {"-orig-ctx with plain -pe rope", "-orig-ctx needs a scaling method", {"@L", "-pe", "rope", "-orig-ctx", "64", NULL}},
        {"-orig-ctx on a plain RoPE file without -pe", "-orig-ctx needs a scaling method", {"@L", "-orig-ctx", "64", NULL}},
        {"-scale with -pe self-extend", "-pe self-extend has no scale", {"@L", "-pe", "self-extend", "-grp-n", "4", "-grp-w", "64", "-scale", "2", NULL}},
        {"-keep on a learned-position model", "cannot shift", {"@G", "-keep", "4", "-n", "1", NULL}},
        {"-dyn-kv without -pe dynamic", "-dyn-kv applies to -pe dynamic only", {"@L", "-pe", "yarn", "-dyn-kv", "stale", NULL}},
        {"-dyn-kv on an ALiBi model", "-dyn-kv applies to RoPE", {"@B", "-dyn-kv", "stale", NULL}},
        {"-pe self-extend on an ALiBi model", "family is alibi", {"@B", "-pe", "self-extend", "-grp-n", "4", "-grp-w", "64", NULL}},
        {"-grp-n on an ALiBi model", "-grp-n applies to RoPE", {"@B", "-grp-n", "4", NULL}},
        {"-grp-n without -pe self-extend", "-grp-n applies to -pe self-extend only", {"@L", "-grp-n", "4", "-grp-w", "64", NULL}},
        {"-grp-w with -pe yarn", "-grp-w applies to -pe self-extend only", {"@L", "-pe", "yarn", "-grp-w", "64", NULL}},
        {"-pe self-extend without -grp-n, -grp-w", "-pe self-extend needs a group size", {"@L", "-pe", "self-extend", NULL}},
        {"-pe self-extend without -grp-w", "neighbour window", {"@L", "-pe", "self-extend", "-grp-n", "4", NULL}},
        {"-grp-w not a multiple of -grp-n", "-grp-w 100 must be a multiple of -grp-n 8", {"@L", "-pe", "self-extend", "-grp-n", "8", "-grp-w", "100", NULL}},
        {"-grp-n 0", "-grp-n expects", {"@L", "-pe", "self-extend", "-grp-n", "0", "-grp-w", "64", NULL}},
        {"-grp-w 0", "-grp-w expects", {"@L", "-pe", "self-extend", "-grp-n", "4", "-grp-w", "0", NULL}},
        {"-grp-n -4", "-grp-n expects", {"@L", "-pe", "self-extend", "-grp-n", "-4", "-grp-w", "64", NULL}},
    };
    run_error_cases(cases, N_OF(cases));

    /* the other absolute encoding: a sinusoidal pelab model written for the test */
    char path[600];
    snprintf(path, sizeof path, "%s/cli-%ld-sinusoidal.gguf", test_tmp_dir, (long)getpid());
    TestModelSpec spec = test_model_spec("sinusoidal");
    CHECK(test_model_write(path, &spec) == 0, "cannot write %s", path);
    const char *args[] = {path, "-keep", "4", "-n", "1", "-i", "a", NULL};
    expect_error_argv("-keep on a sinusoidal model", "cannot shift", args);
    unlink(path);
}

/* ------------------------------------------------------------------------------------------ */
/* positions and context */

static void test_cli_learned_past_table(void) {
    const char *toks = "1,2,3,4,5,6,7,8,9,10";
    const char *bad[] = {path_gpt2, "-m", "logits", "-pos0", "250", "-tokens", toks, "-dump", path_dump, NULL};
    Proc p = run_cli(bad);
    int clean = p.started && p.exited && p.status != 0 && one_error_line(&p);
    CHECK(clean, "[learned -pos0 250, 10 tokens] should be a clean error: %s", describe(&p));
    CHECK(strstr(p.err, "learned") || strstr(p.err, "table"),
          "[learned -pos0 250, 10 tokens] the error should say learned positions cannot extrapolate: %s", describe(&p));
    proc_free(&p);
    unlink(path_dump);

    const char *edge[] = {path_gpt2, "-m", "logits", "-pos0", "246", "-tokens", toks, "-dump", path_dump, NULL};
    p = run_cli(edge);
    CHECK(p.started && p.exited && p.status == 0 && p.err_len == 0, "[learned -pos0 246, last position 255] should succeed: %s",
          describe(&p));
    long size = file_size(path_dump);
    CHECK(size == 10L * 512 * 4, "[learned -pos0 246] dump is %ld bytes, want %ld", size, 10L * 512 * 4);
    proc_free(&p);
    unlink(path_dump);
}

static void test_cli_prompt_longer_than_context(void) {
    char prompt[101];
    for (int i = 0; i < 100; i++) prompt[i] = (char)('a' + i % 26);
    prompt[100] = 0;
    const char *gen[] = {UNTRAINED, "-ctx", "8", "-i", prompt, "-n", "4", NULL};
    expect_error_argv("100-char prompt with -ctx 8", "context", gen);

    const char *logits[] = {path_llama, "-ctx", "4", "-m", "logits", "-tokens", "1,2,3,4,5,6", "-dump", path_dump, NULL};
    expect_error_argv("6 logits tokens with -ctx 4", "context", logits);
    unlink(path_dump);

    /* 300 tokens on the model's own 256-token context */
    char list[2000];
    int n = 0;
    for (int i = 0; i < 300; i++) n += snprintf(list + n, sizeof list - n, "%s%d", i ? "," : "", i % 512);
    const char *many[] = {path_llama, "-m", "logits", "-tokens", list, "-dump", path_dump, NULL};
    expect_error_argv("300 logits tokens on the 256-token default context", "context", many);
    unlink(path_dump);
}

/* generate with -pos0 so close to INT_MAX that the next position does not fit in an int */
static void test_cli_generate_position_overflow(void) {
    const char *args[] = {UNTRAINED, "-pos0", "2147483646", "-i", "a", "-n", "3", "-t", "0", NULL};
    Proc p = run_cli(args);
    int clean = p.started && p.exited && p.status != 0 && one_error_line(&p) && strstr(p.err, "position");
    int stopped = p.started && p.exited && p.status == 0 && stat_count(p.err, "generate: ") <= 1 && !strstr(p.err, "runtime error");
    CHECK(clean || stopped,
          "[generate -pos0 2147483646 -i a -n 3] the prompt takes positions 2147483646..2147483647: the run must refuse "
          "(clean error naming the position) or stop after the first sampled token, not forward tokens past INT_MAX: %s",
          describe(&p));
    proc_free(&p);
}

/* ------------------------------------------------------------------------------------------ */
/* damaged model files */

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    CHECK(f != NULL, "cannot write %s", path);
    if (!f) return;
    if (n) CHECK(fwrite(data, 1, n, f) == n, "short write to %s", path);
    fclose(f);
}

/* two damaged inputs every tool must refuse: a valid model cut in half, and a text file */
static void write_half_and_text(const char *half, const char *text) {
    size_t len;
    char *model = read_file_all(path_llama, &len);
    CHECK(model && len > 64, "cannot read %s", path_llama);
    if (model) write_bytes(half, model, len / 2);
    free(model);
    const char *prose = "This is a text file.\nIt is not a model.\n";
    write_bytes(text, prose, strlen(prose));
}

static void test_cli_damaged_models(void) {
    char dir[600], empty[600], rnd[600], half[600], text[600], magic[600], missing[600];
    long pid = (long)getpid();
    snprintf(dir, sizeof dir, "%s/cli-%ld-dir.gguf", test_tmp_dir, pid);
    snprintf(empty, sizeof empty, "%s/cli-%ld-empty.gguf", test_tmp_dir, pid);
    snprintf(rnd, sizeof rnd, "%s/cli-%ld-random.gguf", test_tmp_dir, pid);
    snprintf(half, sizeof half, "%s/cli-%ld-half.gguf", test_tmp_dir, pid);
    snprintf(text, sizeof text, "%s/cli-%ld-text.gguf", test_tmp_dir, pid);
    snprintf(magic, sizeof magic, "%s/cli-%ld-magic-only.gguf", test_tmp_dir, pid);
    snprintf(missing, sizeof missing, "%s/cli-%ld-does-not-exist.gguf", test_tmp_dir, pid);
    mkdir(dir, 0755);
    write_bytes(empty, "", 0);
    const unsigned char random10[10] = {0x9f, 0x03, 0xd1, 0x47, 0x00, 0xee, 0x5a, 0x21, 0xc8, 0x7b};
    write_bytes(rnd, random10, sizeof random10);
    write_half_and_text(half, text);
    write_bytes(magic, "GGUF", 4);

    struct { const char *name, *path; } cases[] = {
        {"nonexistent path", missing}, {"a directory", dir}, {"an empty file", empty}, {"10 random bytes", rnd},
        {"a valid model truncated in half", half}, {"a text file", text}, {"only the GGUF magic", magic},
    };
    for (int i = 0; i < N_OF(cases); i++) {
        const char *args[] = {cases[i].path, "-n", "1", NULL};
        expect_error_argv(cases[i].name, cases[i].path, args);
        const char *logit_args[] = {cases[i].path, "-m", "logits", "-tokens", "1", "-dump", path_dump, NULL};
        char name[128];
        snprintf(name, sizeof name, "%s, logits mode", cases[i].name);
        expect_error_argv(name, cases[i].path, logit_args);
    }
    /* the problem, not only the path */
    const char *a1[] = {missing, NULL};
    expect_error_argv("nonexistent path says why", "No such file", a1);
    const char *a2[] = {half, NULL};
    expect_error_argv("truncated model says why", "past the end", a2);
    const char *a3[] = {text, NULL};
    expect_error_argv("text file says why", "not a GGUF", a3);
    const char *a4[] = {empty, NULL};
    expect_error_argv("empty file says why", "too small", a4);
    const char *a5[] = {dir, NULL};
    expect_error_argv("directory says why", "not a regular file", a5);

    rmdir(dir);
    unlink(empty); unlink(rnd); unlink(half); unlink(text); unlink(magic); unlink(path_dump);
}

/* ------------------------------------------------------------------------------------------ */
/* help */

static void test_cli_help(void) {
    static const char *flags[] = {"-pe", "-scale", "-orig-ctx", "-rope-base", "-rope-dims", "-rope-layout", "-yarn-beta-fast",
                                  "-yarn-beta-slow", "-yarn-attn", "-yarn-ext", "-llama3-low", "-llama3-high", "-alibi-max-bias",
                                  "-keep", "-tokens", "-pos0", "-dump", "-ctx", "-chunk", "-th", "-m", "-i", "-n", "-t", "-p", "-s"};
    const char *h1[] = {"-h", NULL}, *h2[] = {"--help", NULL}, *h3[] = {path_llama, "-n", "5", "-h", NULL};
    const char *const *forms[] = {h1, h2, h3};
    const char *names[] = {"-h", "--help", "model -n 5 -h"};
    for (int f = 0; f < 3; f++) {
        Proc p = run_cli(forms[f]);
        CHECK(p.started && p.exited && p.status == 0, "[%s] should exit 0: %s", names[f], describe(&p));
        CHECK(p.err_len == 0, "[%s] usage goes to stdout, stderr should be empty: %s", names[f], describe(&p));
        CHECK(strncmp(p.out, "usage:", 6) == 0, "[%s] stdout should start with 'usage:'", names[f]);
        for (int i = 0; i < N_OF(flags); i++) {
            char want[40];
            snprintf(want, sizeof want, "  %s ", flags[i]);   /* as a usage entry, not inside another flag's name */
            CHECK(strstr(p.out, want) != NULL, "[%s] usage does not list %s", names[f], flags[i]);
        }
        for (const char *m = "rope\0yarn\0alibi\0learned\0"; *m; m += strlen(m) + 1)
            CHECK(strstr(p.out, m) != NULL, "[%s] usage should list the encoding %s", names[f], m);
        proc_free(&p);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* happy paths */

static void test_cli_generate(void) {
    const char *args[] = {UNTRAINED, "-s", "7", "-n", "20", "-t", "0", "-i", "hello", NULL};
    Proc p = run_cli(args);
    CHECK(p.started && p.exited && p.status == 0, "[generate -s 7 -n 20 -t 0] should exit 0: %s", describe(&p));
    CHECK(p.out_len >= 5 && !memcmp(p.out, "hello", 5), "[generate] stdout should start with the prompt 'hello': %.40s", p.out);
    CHECK(strstr(p.err, "tok/s") != NULL, "[generate] stderr should carry the tok/s line: %s", describe(&p));
    int gen = stat_count(p.err, "generate: ");
    CHECK(gen == 20, "[generate] stderr should say 'generate: 20 tokens', got %d: %s", gen, describe(&p));
    CHECK(gen != 20 || p.out_len == 5 + 20 + 1, "[generate] bytes tokenizer: 5 prompt + 20 generated + newline, got %zu stdout bytes",
          p.out_len);
    CHECK(p.out_len > 0 && p.out[p.out_len - 1] == '\n', "[generate] stdout should end with a newline");
    int lines = 0;
    for (size_t i = 0; i < p.err_len; i++) lines += p.err[i] == '\n';
    CHECK(lines == 1, "[generate] stderr should be the one stats line: %s", describe(&p));
    proc_free(&p);
}

/* -m info: one "key = value" line per metadata key after the file's summary, the parameter count the
   sum of the tensors' elements (counted here from the parsed file) */
static void test_cli_info(void) {
    const char *args[] = {path_llama, "-m", "info", NULL};
    Proc p = run_cli(args);
    CHECK(p.started && p.exited && p.status == 0 && p.err_len == 0, "[-m info] should exit 0 and print nothing on stderr: %s", describe(&p));
    Gguf g;
    char err[GGUF_ERR];
    if (gguf_open(&g, path_llama, err)) { CHECK(0, "cannot open %s: %s", path_llama, err); proc_free(&p); return; }
    unsigned long long params = 0;
    for (uint64_t i = 0; i < g.n_tensors; i++) params += g.tensors[i].ne[0] * g.tensors[i].ne[1] * g.tensors[i].ne[2] * g.tensors[i].ne[3];
    char want[5][96];
    snprintf(want[0], sizeof want[0], "\nparameters = %llu\n", params);
    snprintf(want[1], sizeof want[1], "\ngguf.tensors = %llu\n", (unsigned long long)g.n_tensors);
    snprintf(want[2], sizeof want[2], "\nllama.rope.freq_base = 10000\n");
    snprintf(want[3], sizeof want[3], "\ntokenizer.ggml.tokens = [string x 512]\n");
    snprintf(want[4], sizeof want[4], "\nencoding = rope (rope family)\n");
    for (int i = 0; p.out && i < 5; i++) CHECK(strstr(p.out, want[i]), "[-m info] output lacks '%.*s'", (int)strlen(want[i]) - 2, want[i] + 1);
    int lines = 0;
    for (size_t i = 0; i < p.out_len; i++) lines += p.out[i] == '\n';
    CHECK(lines == 5 + (int)g.n_kv, "[-m info] %d lines, want 5 + %llu keys", lines, (unsigned long long)g.n_kv);
    gguf_close(&g);
    proc_free(&p);
}

static void test_cli_generate_deterministic(void) {
    const char *greedy[] = {UNTRAINED, "-s", "7", "-n", "20", "-t", "0", "-i", "hello", NULL};
    const char *sampled[] = {UNTRAINED, "-s", "7", "-n", "40", "-t", "1.0", "-p", "0.95", "-i", "seeded", NULL};
    const char *no_topp[] = {UNTRAINED, "-s", "12345", "-n", "40", "-t", "0.8", "-p", "1", NULL};
    const char *const *runs[] = {greedy, sampled, no_topp};
    const char *names[] = {"greedy -s 7", "sampled -s 7 -t 1 -p 0.95", "sampled -s 12345 -t 0.8 -p 1, empty prompt"};
    for (int r = 0; r < 3; r++) {
        Proc a = run_cli(runs[r]), b = run_cli(runs[r]);
        CHECK(a.exited && a.status == 0 && b.exited && b.status == 0, "[%s] should exit 0: %s", names[r], describe(&a));
        CHECK(a.out_len == b.out_len && !memcmp(a.out, b.out, a.out_len), "[%s] two runs with the same seed differ (%zu vs %zu bytes)",
              names[r], a.out_len, b.out_len);
        proc_free(&a);
        proc_free(&b);
    }
}

/* prompts and paths with spaces and shell characters reach the binary unchanged */
static void test_cli_exact_arguments(void) {
    const char *prompt = "a b  'c' \"d\" $HOME;|&*";
    const char *gen[] = {UNTRAINED, "-n", "3", "-t", "0", "-i", prompt, NULL};
    Proc p = run_cli(gen);
    CHECK(p.exited && p.status == 0, "[prompt with shell characters] should exit 0: %s", describe(&p));
    CHECK(p.out_len >= strlen(prompt) && !memcmp(p.out, prompt, strlen(prompt)), "[prompt with shell characters] echo differs: %.60s",
          p.out);
    proc_free(&p);

    char dump[700];
    snprintf(dump, sizeof dump, "%s/cli %ld dump 'x' $y.f32", test_tmp_dir, (long)getpid());
    const char *lg[] = {path_llama, "-m", "logits", "-tokens", "3,1,4", "-dump", dump, NULL};
    p = run_cli(lg);
    CHECK(p.exited && p.status == 0, "[dump path with spaces] should exit 0: %s", describe(&p));
    CHECK(file_size(dump) == 3L * 512 * 4, "[dump path with spaces] %s is %ld bytes, want %ld", dump, file_size(dump), 3L * 512 * 4);
    proc_free(&p);
    unlink(dump);
}

static void test_cli_logits_finite(void) {
    const char *args[] = {path_llama, "-m", "logits", "-tokens", "5,17,300,2,511", "-dump", path_dump, NULL};
    Proc p = run_cli(args);
    CHECK(p.started && p.exited && p.status == 0, "[logits 5 tokens] should exit 0: %s", describe(&p));
    CHECK(p.out_len == 0 && p.err_len == 0, "[logits] should print nothing: %s", describe(&p));
    size_t n;
    float *f = read_floats(path_dump, &n);
    CHECK(f && file_size(path_dump) == 5L * 512 * 4, "[logits] dump is %ld bytes, want %ld", file_size(path_dump), 5L * 512 * 4);
    size_t bad = 0;
    for (size_t i = 0; f && i < n; i++) bad += !isfinite(f[i]);
    CHECK(f && bad == 0, "[logits] %zu of %zu values are not finite", bad, n);
    double spread = 0;
    for (size_t i = 1; f && i < n; i++) spread += fabs((double)f[i] - f[0]);
    CHECK(spread > 0, "[logits] every value is the same: the dump looks empty");
    free(f);
    proc_free(&p);
    unlink(path_dump);
}

/* the fixture's tokens and logits: rows of n_vocab float32 from llama.cpp */
static void test_cli_logits_match_fixture(void) {
    enum { ROWS = 8, V = 512 };
    char case_path[600], logits_path[600];
    snprintf(case_path, sizeof case_path, "%s/llama-rope/case.txt", test_fixtures_dir);
    size_t len;
    char *text = read_file_all(case_path, &len);
    CHECK(text != NULL, "cannot read %s", case_path);
    if (!text) return;
    int tokens[ROWS], n_tok = 0, n_vocab = 0, pos0 = -1;
    double tol = -1;
    char logits_name[256] = "logits.f32";
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strncmp(line, "tokens ", 7)) {
            char *s = line + 7, *end;
            while (n_tok < ROWS) {
                long v = strtol(s, &end, 10);
                if (end == s) break;
                tokens[n_tok++] = (int)v;
                s = end;
            }
        } else if (!strncmp(line, "tolerance ", 10)) tol = atof(line + 10);
        else if (!strncmp(line, "n_vocab ", 8)) n_vocab = atoi(line + 8);
        else if (!strncmp(line, "pos0 ", 5)) pos0 = atoi(line + 5);
        else if (!strncmp(line, "logits ", 7)) snprintf(logits_name, sizeof logits_name, "%s", line + 7);
    }
    free(text);
    CHECK(n_tok == ROWS && n_vocab == V && pos0 == 0 && tol > 0, "case.txt: %d tokens, n_vocab %d, pos0 %d, tolerance %g", n_tok, n_vocab,
          pos0, tol);
    if (n_tok != ROWS || n_vocab != V || tol <= 0) return;
    snprintf(logits_path, sizeof logits_path, "%s/llama-rope/%s", test_fixtures_dir, logits_name);

    char list[256];
    int k = 0;
    for (int i = 0; i < ROWS; i++) k += snprintf(list + k, sizeof list - k, "%s%d", i ? "," : "", tokens[i]);
    const char *args[] = {path_llama, "-m", "logits", "-pos0", "0", "-tokens", list, "-dump", path_dump, NULL};
    Proc p = run_cli(args);
    CHECK(p.exited && p.status == 0, "[fixture llama-rope] should exit 0: %s", describe(&p));
    size_t n_got, n_ref;
    float *got = read_floats(path_dump, &n_got), *ref = read_floats(logits_path, &n_ref);
    CHECK(got && n_got == (size_t)ROWS * V, "[fixture llama-rope] dump holds %zu floats, want %d", n_got, ROWS * V);
    CHECK(ref && n_ref >= (size_t)ROWS * V, "[fixture llama-rope] %s holds %zu floats", logits_path, n_ref);
    if (got && ref && n_got == (size_t)ROWS * V && n_ref >= (size_t)ROWS * V) {
        for (int r = 0; r < ROWS; r++) {
            double d = max_abs_diff(got + (size_t)r * V, ref + (size_t)r * V, V);
            CHECK(d <= tol, "[fixture llama-rope] row %d (token %d) differs from llama.cpp by %.3g (tolerance %g)", r, tokens[r], d, tol);
        }
    }
    free(got);
    free(ref);
    proc_free(&p);
    unlink(path_dump);
}

static void test_cli_logits_chunking(void) {
    char list[512], dump1[700];
    int k = 0;
    for (int i = 0; i < 40; i++) k += snprintf(list + k, sizeof list - k, "%s%d", i ? "," : "", (i * 97 + 13) % 512);
    snprintf(dump1, sizeof dump1, "%s/cli-%ld-chunk1.f32", test_tmp_dir, (long)getpid());
    const char *a1[] = {path_llama, "-m", "logits", "-pos0", "3", "-chunk", "1", "-tokens", list, "-dump", dump1, NULL};
    const char *a2[] = {path_llama, "-m", "logits", "-pos0", "3", "-chunk", "512", "-tokens", list, "-dump", path_dump, NULL};
    Proc p1 = run_cli(a1), p2 = run_cli(a2);
    CHECK(p1.exited && p1.status == 0, "[-chunk 1] should exit 0: %s", describe(&p1));
    CHECK(p2.exited && p2.status == 0, "[-chunk 512] should exit 0: %s", describe(&p2));
    size_t n1, n2;
    float *f1 = read_floats(dump1, &n1), *f2 = read_floats(path_dump, &n2);
    CHECK(f1 && f2 && n1 == 40 * 512 && n2 == 40 * 512, "[chunking] dumps hold %zu and %zu floats, want %d", n1, n2, 40 * 512);
    if (f1 && f2 && n1 == n2 && n1 == 40 * 512) {
        double d = max_abs_diff(f1, f2, n1);
        CHECK(d <= 1e-5, "[chunking] -chunk 1 and -chunk 512 differ by %.3g", d);
    }
    free(f1);
    free(f2);
    proc_free(&p1);
    proc_free(&p2);
    unlink(dump1);
    unlink(path_dump);
}

/* ------------------------------------------------------------------------------------------ */
/* context shift from the command line */

static void test_cli_context_shift(void) {
    const char *args[] = {UNTRAINED, "-ctx", "16", "-keep", "4", "-n", "60", "-t", "0", "-i", "ab", NULL};
    Proc p = run_cli(args);
    CHECK(p.started && p.exited && p.status == 0, "[-ctx 16 -keep 4 -n 60] should exit 0: %s", describe(&p));
    CHECK(p.out_len >= 2 && !memcmp(p.out, "ab", 2), "[-keep] stdout should start with the prompt");
    CHECK(strstr(p.err, "generate: 60 tokens") != NULL, "[-keep] stderr should say 'generate: 60 tokens': %s", describe(&p));
    CHECK(strstr(p.err, "context shift") != NULL, "[-keep] stderr should report the context shifts: %s", describe(&p));
    CHECK(p.out_len == 2 + 60 + 1, "[-keep] stdout should be the prompt, 60 one-byte tokens and a newline: %zu bytes", p.out_len);
    proc_free(&p);

    /* the smallest useful sink count and the largest that still leaves something to drop */
    const char *keep0[] = {UNTRAINED, "-ctx", "16", "-keep", "0", "-n", "60", "-t", "0", "-i", "ab", NULL};
    p = run_cli(keep0);
    CHECK(p.exited && p.status == 0 && strstr(p.err, "generate: 60 tokens"), "[-ctx 16 -keep 0 -n 60]: %s", describe(&p));
    proc_free(&p);
    const char *keep14[] = {UNTRAINED, "-ctx", "16", "-keep", "14", "-n", "40", "-t", "0", "-i", "ab", NULL};
    p = run_cli(keep14);
    CHECK(p.exited && p.status == 0 && strstr(p.err, "generate: 40 tokens"), "[-ctx 16 -keep 14 -n 40]: %s", describe(&p));
    proc_free(&p);
    /* Self-Extend's far-view keys follow the shift too, also in a half cache */
    const char *se[] = {UNTRAINED, "-pe", "self-extend", "-grp-n", "2", "-grp-w", "4", "-kv", "f16", "-ctx", "16", "-keep", "4", "-n", "60",
                        "-t", "0", "-i", "ab", NULL};
    p = run_cli(se);
    CHECK(p.exited && p.status == 0 && strstr(p.err, "generate: 60 tokens") && strstr(p.err, "context shift"),
          "[-pe self-extend -kv f16 -ctx 16 -keep 4 -n 60]: %s", describe(&p));
    proc_free(&p);
}

/* -kv f16 reaches the cache: the logits move (by rounding, within the fixtures' f16 tolerance), and
   generation with context shifts runs on a half cache */
static void test_cli_kv_f16(void) {
    char dump32[700];
    snprintf(dump32, sizeof dump32, "%s.kv32", path_dump);
    const char *a32[] = {path_llama, "-m", "logits", "-tokens", "5,17,300,2,511,9,44", "-kv", "f32", "-dump", dump32, NULL};
    const char *a16[] = {path_llama, "-m", "logits", "-tokens", "5,17,300,2,511,9,44", "-kv", "f16", "-dump", path_dump, NULL};
    Proc p = run_cli(a32), q = run_cli(a16);
    CHECK(p.exited && p.status == 0, "[-kv f32 logits] should exit 0: %s", describe(&p));
    CHECK(q.exited && q.status == 0, "[-kv f16 logits] should exit 0: %s", describe(&q));
    size_t n32, n16;
    float *f32 = read_floats(dump32, &n32), *f16 = read_floats(path_dump, &n16);
    CHECK(f32 && f16 && n32 == 7 * 512 && n16 == n32, "[-kv] dumps of %zu and %zu floats, want %d", n32, n16, 7 * 512);
    if (f32 && f16 && n16 == n32) {
        double d = max_abs_diff(f32, f16, n32);
        CHECK(d > 0 && d <= KV_F16_TOLERANCE, "[-kv f16] logits differ from f32 by %.3g: want rounding, at most %g", d, KV_F16_TOLERANCE);
    }
    free(f32);
    free(f16);
    proc_free(&p);
    proc_free(&q);
    unlink(dump32);
    unlink(path_dump);
    const char *gen[] = {UNTRAINED, "-kv", "f16", "-ctx", "16", "-keep", "4", "-n", "60", "-t", "0", "-i", "ab", NULL};
    p = run_cli(gen);
    CHECK(p.exited && p.status == 0 && strstr(p.err, "generate: 60 tokens") && strstr(p.err, "context shift"),
          "[-kv f16 -ctx 16 -keep 4 -n 60]: %s", describe(&p));
    proc_free(&p);
}

static void test_cli_context_full(void) {
    const char *args[] = {UNTRAINED, "-ctx", "16", "-n", "60", "-t", "0", "-i", "ab", NULL};
    Proc p = run_cli(args);
    CHECK(p.started && p.exited && p.status == 0, "[-ctx 16 -n 60 without -keep] should stop and exit 0: %s", describe(&p));
    CHECK(strstr(p.err, "context full") != NULL, "[no -keep] stderr should say the context is full: %s", describe(&p));
    int prefill = stat_count(p.err, "prefill: "), gen = stat_count(p.err, "generate: ");
    CHECK(gen >= 0 && gen < 60, "[no -keep] should stop early, generated %d: %s", gen, describe(&p));
    CHECK(prefill > 0 && gen == 16 - prefill + 1, "[no -keep] %d prompt tokens in 16 slots leave %d generated tokens, got %d", prefill,
          16 - prefill + 1, gen);
    CHECK(gen < 0 || p.out_len == 2 + (size_t)gen + 1, "[no -keep] stdout: %zu bytes for 2 prompt bytes and %d tokens", p.out_len, gen);
    proc_free(&p);
}

/* ------------------------------------------------------------------------------------------ */
/* ./quantize ($QUANTIZE_BINARY) */

static void test_quantize_cli_errors(void) {
    CHECK(access(test_quantize_binary, X_OK) == 0, "QUANTIZE_BINARY %s is not an executable file", test_quantize_binary);
    char out[600], half[600], text[600], missing[600];
    long pid = (long)getpid();
    snprintf(out, sizeof out, "%s/cli-%ld-quantized.gguf", test_tmp_dir, pid);
    snprintf(half, sizeof half, "%s/cli-%ld-qhalf.gguf", test_tmp_dir, pid);
    snprintf(text, sizeof text, "%s/cli-%ld-qtext.gguf", test_tmp_dir, pid);
    snprintf(missing, sizeof missing, "%s/cli-%ld-qmissing.gguf", test_tmp_dir, pid);
    write_half_and_text(half, text);
    struct { const char *name, *word, *args[8]; } cases[] = {
        {"no arguments", "expected in.gguf out.gguf TYPE", {NULL}},
        {"two arguments", "expected in.gguf out.gguf TYPE", {path_llama, out, NULL}},
        {"missing input file", "No such file", {missing, out, "q8_0", NULL}},
        {"truncated input", "past the end", {half, out, "q8_0", NULL}},
        {"text file as input", "not a GGUF", {text, out, "f16", NULL}},
        {"unknown type q4_0", "unknown type 'q4_0'", {path_llama, out, "q4_0", NULL}},
        {"172-wide rows as q8_0", "not a multiple of 32", {path_llama, out, "q8_0", NULL}},
        {"unknown flag", "unknown flag -z", {path_llama, out, "q8_0", "-z", "f16", NULL}},
        {"-fallback q8_0", "-fallback", {path_llama, out, "q8_0", "-fallback", "q8_0", NULL}},
        {"-fallback with f16", "-fallback applies to q8_0", {path_llama, out, "f16", "-fallback", "f32", NULL}},
        {"-fallback bogus", "unknown -fallback type 'bogus'", {path_llama, out, "q8_0", "-fallback", "bogus", NULL}},
        {"output into a missing directory", "cannot write", {path_llama, "/nonexistent-dir/x.gguf", "f16", NULL}},
    };
    for (int i = 0; i < N_OF(cases); i++) {
        expect_prog_error(test_quantize_binary, cases[i].name, cases[i].word, cases[i].args);
        char part[700];
        snprintf(part, sizeof part, "%s.part", out);
        CHECK(!file_exists(out) && !file_exists(part), "[quantize: %s] left a file behind", cases[i].name);
    }
    unlink(half);
    unlink(text);
}

/* -h; q8_0 with -fallback f16 on a fixture, then ./run on the result; the input may be the output */
static void test_quantize_cli_converts(void) {
    const char *help[] = {"-h", NULL};
    Proc p = run_prog(test_quantize_binary, help);
    CHECK(p.exited && p.status == 0 && !strncmp(p.out, "usage:", 6) && strstr(p.out, "-fallback"), "[quantize -h]: %s", describe(&p));
    proc_free(&p);
    char out[600];
    snprintf(out, sizeof out, "%s/cli-%ld-quantized.gguf", test_tmp_dir, (long)getpid());
    const char *args[] = {path_llama, out, "q8_0", "-fallback", "f16", NULL};
    p = run_prog(test_quantize_binary, args);
    CHECK(p.exited && p.status == 0 && p.err_len == 0 && strstr(p.out, "q8_0"), "[quantize q8_0 -fallback f16]: %s", describe(&p));
    proc_free(&p);
    long q8_size = file_size(out), f32_size = file_size(path_llama);
    CHECK(q8_size > 0 && q8_size < f32_size / 2, "Q8_0 file is %ld bytes, the F32 one %ld", q8_size, f32_size);
    const char *logits[] = {out, "-m", "logits", "-tokens", "1,2,3", "-dump", path_dump, NULL};
    p = run_cli(logits);
    CHECK(p.exited && p.status == 0 && file_size(path_dump) == 3L * 512 * 4, "[./run on the Q8_0 file]: %s", describe(&p));
    proc_free(&p);
    const char *in_place[] = {out, out, "f32", NULL};   /* back to F32, over itself */
    p = run_prog(test_quantize_binary, in_place);
    CHECK(p.exited && p.status == 0 && file_size(out) == f32_size, "[quantize in place to f32]: %ld bytes, want %ld: %s", file_size(out),
          f32_size, describe(&p));
    proc_free(&p);
    unlink(out);
    unlink(path_dump);
}

void suite_cli(void) {
    init_paths();
    RUN(test_cli_binary_present);
    RUN(test_cli_malformed_flags);
    RUN(test_cli_bad_tokens);
    RUN(test_cli_encoding_mismatch);
    RUN(test_cli_learned_past_table);
    RUN(test_cli_prompt_longer_than_context);
    RUN(test_cli_generate_position_overflow);
    RUN(test_cli_damaged_models);
    RUN(test_cli_help);
    RUN(test_cli_generate);
    RUN(test_cli_info);
    RUN(test_cli_generate_deterministic);
    RUN(test_cli_exact_arguments);
    RUN(test_cli_logits_finite);
    RUN(test_cli_logits_match_fixture);
    RUN(test_cli_logits_chunking);
    RUN(test_cli_context_shift);
    RUN(test_cli_context_full);
    RUN(test_cli_kv_f16);
    RUN(test_quantize_cli_errors);
    RUN(test_quantize_cli_converts);
}
