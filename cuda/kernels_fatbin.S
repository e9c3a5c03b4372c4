// Embeds the kernels' fatbin (built by nvcc, see cuda/CMakeLists.txt) in the library, between
// the symbols ps_kernels_fatbin_begin and ps_kernels_fatbin_end (cuda/module.cc).
// PS_KERNELS_FATBIN is the fatbin's path, as a string, from the build.

  .section .rodata.ps_kernels_fatbin, "a", @progbits
  .balign 64
  .globl ps_kernels_fatbin_begin
  .hidden ps_kernels_fatbin_begin
  .type ps_kernels_fatbin_begin, @object
ps_kernels_fatbin_begin:
  .incbin PS_KERNELS_FATBIN
  .globl ps_kernels_fatbin_end
  .hidden ps_kernels_fatbin_end
  .type ps_kernels_fatbin_end, @object
ps_kernels_fatbin_end:
  .byte 0

// The library needs no executable stack.
  .section .note.GNU-stack, "", @progbits
