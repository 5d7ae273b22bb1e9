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
/* The threads of a block are coroutines, each on its own stack, resumed in thread order once per
 * phase; a phase ends when every thread has reached the next barrier or its end.
 *
 * On x86-64 a switch is emu_switch below: the callee-saved registers and the SSE/x87 control
 * words pushed on the running stack, the stack pointer swapped (a few nanoseconds). Elsewhere,
 * and under AddressSanitizer (which must see stack switches), ucontext's swapcontext, which also
 * saves the signal mask with a system call per switch (about 30x slower on block kernels). */
#include <stdio.h>
#include <ucontext.h>

#include <vector>

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define EMU_FAST_SWITCH 1
#endif

void *hg_emu_dyn_smem;

static const size_t stack_bytes = (size_t)256 << 10; /* per emulated thread */
static char *stacks;                                  /* one mapping for all of a block's threads */
static size_t stacks_threads;
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

#ifdef EMU_FAST_SWITCH
/* emu_switch(from, to): save this context's registers on its stack and its stack pointer in
 * *from, continue the context whose stack pointer is `to`. A context saved by it, or prepared by
 * start_thread, is 8 bytes of control words (MXCSR, x87 CW), r15..r12, rbx, rbp, return address. */
extern "C" void emu_switch(void **from, void *to);
__asm__(".text\n"
        ".p2align 4\n"
        "emu_switch:\n"
        "  pushq %rbp\n  pushq %rbx\n  pushq %r12\n  pushq %r13\n  pushq %r14\n  pushq %r15\n"
        "  subq $8, %rsp\n  stmxcsr (%rsp)\n  fnstcw 4(%rsp)\n"
        "  movq %rsp, (%rdi)\n  movq %rsi, %rsp\n"
        "  ldmxcsr (%rsp)\n  fldcw 4(%rsp)\n  addq $8, %rsp\n"
        "  popq %r15\n  popq %r14\n  popq %r13\n  popq %r12\n  popq %rbx\n  popq %rbp\n"
        "  ret\n");

static void *sched_sp;
static std::vector<void *> thread_sp;

static void thread_entry(void)
{
    block_fn(block_arg);
    at_end[running] = 1;
    void *dead;
    emu_switch(&dead, sched_sp); /* never resumed */
    emu_fail("an ended emulated thread was resumed");
}

extern "C" void hg_emu_syncthreads(void)
{
    if (!in_block)
        emu_fail("__syncthreads() in a kernel launched with HG_LAUNCH (use HG_LAUNCH_BLOCK)");
    emu_switch(&thread_sp[running], sched_sp);
}

/* Make thread t start at thread_entry on its stack: a frame that emu_switch "returns" into,
 * with the stack aligned as at a function's entry. */
static void start_thread(unsigned t)
{
    at_end[t] = 0;
    /* the tops staggered by 320 bytes a thread: at a stride of 256 KiB alone every thread's
     * frames would fall into the same cache sets */
    uintptr_t top = (uintptr_t)(stacks + (size_t)(t + 1) * stack_bytes - (t % 128) * 320) &
                    ~(uintptr_t)15;
    uint64_t *sp = (uint64_t *)top - 2; /* sp[0]: return address, 16-byte aligned */
    sp[0] = (uint64_t)(uintptr_t)thread_entry;
    sp -= 7; /* r15 r14 r13 r12 rbx rbp below it: zero; then the control words */
    memset(sp, 0, 7 * sizeof *sp);
    uint32_t mxcsr;
    uint16_t fpucw;
    __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
    __asm__ volatile("fnstcw %0" : "=m"(fpucw));
    memcpy(sp, &mxcsr, 4);
    memcpy((char *)sp + 4, &fpucw, 2);
    thread_sp[t] = sp;
}

static void resume(unsigned t)
{
    running = t;
    hg_emu_thread_idx = dim3(t);
    emu_switch(&sched_sp, thread_sp[t]);
}

static void prepare_threads(unsigned n) { thread_sp.assign(n, nullptr); }
#else
static ucontext_t sched_ctx;
static std::vector<ucontext_t> thread_ctx;

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

static void prepare_threads(unsigned n) { thread_ctx.assign(n, ucontext_t()); }
#endif

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
    prepare_threads(n);
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
