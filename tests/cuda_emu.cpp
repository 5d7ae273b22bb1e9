/* The CUDA backend's kernels built for the CPU emulation (tests/cuda_emu.h). */
#include "../kernels/cuda.cu"

/* Emulated device memory is one arena of address space, bump-allocated. With HG_EMU_GUARD=1 in
 * the environment it is accessible only while a kernel, copy or library call runs
 * (hg_emu_open .. hg_emu_close): host code that dereferences a device pointer then crashes, as
 * it would with a real GPU (two mprotect calls per launch: several times slower, so the tests
 * turn it on for their short runs). Freed blocks are returned to the system (MADV_DONTNEED) but
 * their addresses are not reused. */
#include <sys/mman.h>

#include <map>

static char *arena;
static size_t arena_used;
static const size_t arena_cap = (size_t)1 << 36; /* 64 GiB of address space, never committed */
static int depth;
static std::map<void *, size_t> blocks;

static int guard = -1;

static void protect(int prot)
{
    if (guard < 0) {
        const char *e = getenv("HG_EMU_GUARD");
        guard = e && e[0] == '1';
    }
    if (guard && arena_used && mprotect(arena, arena_used, prot) != 0)
        abort();
}

extern "C" void hg_emu_open(void)
{
    if (depth++ == 0)
        protect(PROT_READ | PROT_WRITE);
}

extern "C" void hg_emu_close(void)
{
    if (--depth == 0)
        protect(PROT_NONE);
}

extern "C" void *hg_emu_dev_alloc(size_t bytes)
{
    if (!arena) {
        void *a = mmap(NULL, arena_cap, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (a == MAP_FAILED)
            return NULL;
        arena = (char *)a;
        protect(PROT_NONE); /* with the guard: closed until a launch opens it */
    }
    size_t len = (bytes + 4095) / 4096 * 4096;
    if (!len)
        len = 4096;
    if (len > arena_cap - arena_used)
        return NULL;
    char *p = arena + arena_used;
    arena_used += len;
    protect(depth ? PROT_READ | PROT_WRITE : PROT_NONE);
    blocks[p] = len;
    return p;
}

extern "C" void hg_emu_dev_free(void *p)
{
    auto it = blocks.find(p);
    if (it == blocks.end())
        abort(); /* not a device pointer, or freed twice */
    madvise(p, it->second, MADV_DONTNEED); /* the pages read as zero again */
    blocks.erase(it);
}

/* ---------------------------------------------------------------- block mode */
/* The threads of a block are coroutines (ucontext), each on its own stack, resumed in thread
 * order once per phase; a phase ends when every thread has reached the next barrier or its end. */
#include <stdio.h>
#include <ucontext.h>

#include <vector>

void *hg_emu_dyn_smem;

static const size_t stack_bytes = (size_t)256 << 10; /* per emulated thread */
static char *stacks;                                  /* one mapping for all of a block's threads */
static size_t stacks_threads;
static ucontext_t sched_ctx;
static std::vector<ucontext_t> thread_ctx;
static std::vector<char> at_end;
static unsigned running; /* the thread being resumed */
static int in_block;     /* 1 while a block-mode launch runs */
static void (*block_fn)(void *);
static void *block_arg;

static void emu_fail(const char *what)
{
    fprintf(stderr, "cuda_emu: %s\n", what);
    abort();
}

static void thread_entry(void)
{
    block_fn(block_arg);
    at_end[running] = 1; /* returning resumes sched_ctx (uc_link) */
}

extern "C" void hg_emu_syncthreads(void)
{
    if (!in_block)
        emu_fail("__syncthreads() in a kernel launched with HG_LAUNCH (use HG_LAUNCH_BLOCK)");
    swapcontext(&thread_ctx[running], &sched_ctx);
}

/* Make thread t start at thread_entry on its stack. */
static void __attribute__((noinline)) start_thread(unsigned t)
{
    at_end[t] = 0;
    getcontext(&thread_ctx[t]);
    thread_ctx[t].uc_stack.ss_sp = stacks + (size_t)t * stack_bytes;
    thread_ctx[t].uc_stack.ss_size = stack_bytes;
    thread_ctx[t].uc_link = &sched_ctx;
    makecontext(&thread_ctx[t], thread_entry, 0);
}

/* Run thread t until its next barrier or its end (swapcontext returns twice: kept out of the
 * loops, whose variables it could clobber). */
static void __attribute__((noinline)) resume(unsigned t)
{
    running = t;
    hg_emu_thread_idx = dim3(t);
    swapcontext(&sched_ctx, &thread_ctx[t]);
}

extern "C" void hg_emu_run_blocks(dim3 grid, dim3 block, size_t smem, void (*fn)(void *),
                                  void *arg)
{
    const unsigned n = block.x;
    if (n > stacks_threads) {
        if (stacks)
            munmap(stacks, stacks_threads * stack_bytes);
        void *m = mmap(NULL, n * stack_bytes, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m == MAP_FAILED)
            emu_fail("cannot map the emulated threads' stacks");
        stacks = (char *)m;
        stacks_threads = n;
    }
    std::vector<unsigned char> dyn(smem ? smem : 1);
    hg_emu_dyn_smem = dyn.data();
    thread_ctx.assign(n, ucontext_t());
    at_end.assign(n, 0);
    block_fn = fn;
    block_arg = arg;
    in_block = 1;
    hg_emu_grid_dim = grid;
    hg_emu_block_dim = block;
    for (unsigned b = 0; b < grid.x; b++) {
        hg_emu_block_idx = dim3(b);
        memset(dyn.data(), 0xff, dyn.size()); /* NaN in every float and double */
        for (unsigned t = 0; t < n; t++)
            start_thread(t);
        for (unsigned ended = 0; ended < n;) {
            ended = 0;
            for (unsigned t = 0; t < n; t++) {
                resume(t);
                ended += at_end[t];
            }
            if (ended != 0 && ended != n)
                emu_fail("a barrier not reached by every thread of a block (divergent "
                         "__syncthreads())");
        }
    }
    in_block = 0;
    hg_emu_dyn_smem = NULL;
}
