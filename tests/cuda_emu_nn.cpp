/* The CUDA backend's neural-network kernels built for the CPU emulation (tests/cuda_emu.h). */
#include "../kernels/cuda_nn.cu"
