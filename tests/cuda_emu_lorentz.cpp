/* The CUDA backend's Lorentz kernels built for the CPU emulation (tests/cuda_emu.h). */
#include "../kernels/cuda_lorentz.cu"
