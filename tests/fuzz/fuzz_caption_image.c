/* caption's image reader on arbitrary bytes: a JPEG or PNG decodes to an
 * image within the size limits, anything else is an error, never a crash.
 * stb_image is compiled here, instrumented, so the fuzzer sees its
 * branches and ASan its reads (the apps link Debian's libstb, the same
 * source). Two UBSan checks are off inside stb only, for what its PNG
 * reader does with an empty first IDAT chunk: NULL + 0 and memcpy(NULL,
 * src, 0), undefined in C but harmless (nothing is read or written). */
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#pragma clang attribute push(                                                  \
    __attribute__((no_sanitize("pointer-overflow", "nonnull-attribute"))),     \
    apply_to = function)
#include <stb_image.h>
#include <stb_image_resize.h>
#pragma clang attribute pop

#include "fuzz_util.h"

#include "apps/caption/caption.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  void *bytes = fuzz_copy(data, size);
  cap_image im;
  if (cap_image_decode(bytes, size, "fuzz", &im) == 0) {
    if (im.w < 1 || im.h < 1 || im.w > CAP_MAX_SIDE || im.h > CAP_MAX_SIDE ||
        (int64_t)im.w * im.h > CAP_MAX_PIXELS)
      abort();
    unsigned char chw[3 * 8 * 8];
    if (cap_image_fit(bytes, size, "fuzz", 8, chw) < 0)
      abort(); /* decoded once, it decodes again */
    cap_image_free(&im);
  } else if (im.rgb || loom_last_status() == LOOM_OK) {
    abort(); /* a failure leaves nothing and says why */
  }
  loom_clear_error();
  free(bytes);
  return 0;
}
