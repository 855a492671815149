/* The thread-local error: the first failure since the last clear, with a
 * message that names the op and the shapes. */
#include "internal.h"

#include <stdarg.h>

static _Thread_local loom_status status;
static _Thread_local char message[512];

loom_status loom_last_status(void) { return status; }

const char *loom_last_error(void) { return message; }

void loom_clear_error(void) {
  status = LOOM_OK;
  message[0] = '\0';
}

void loom_set_error(loom_status s, const char *fmt, ...) {
  if (status != LOOM_OK || s == LOOM_OK)
    return;
  status = s;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message, sizeof message, fmt, ap);
  va_end(ap);
}

void loom_error_context(const char *fmt, ...) {
  size_t len = strlen(message);
  if (status == LOOM_OK || len + 6 >= sizeof message)
    return;
  memcpy(message + len, " (in ", 6);
  len += 5;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(message + len, sizeof message - len, fmt, ap);
  va_end(ap);
  len = strlen(message);
  if (len + 1 < sizeof message)
    memcpy(message + len, ")", 2);
}

void *loom_null_argument(const char *op) {
  loom_set_error(LOOM_ERR_ARGUMENT, "%s: NULL argument", op);
  return NULL;
}

bool loom__check_float(const loom_tensor *t, const char *op) {
  if (!t)
    return true;
  if (!loom_dtype_is_float(t->dtype)) {
    loom_set_error(LOOM_ERR_DTYPE, "%s: expected a float tensor, got %s %s", op,
                   loom_dtype_name(t->dtype), loom_shape_text(t));
    return true;
  }
  return false;
}
