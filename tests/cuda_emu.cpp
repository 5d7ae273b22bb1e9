/* The CUDA backend's kernels built for the CPU emulation (tests/cuda_emu.h). */
#include "../kernels/cuda.cu"
