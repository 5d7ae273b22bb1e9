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
