/* The registry of differentiable ops: every LOOM__OP definition lands in the
 * "loom_ops" section, whose bounds the linker provides. */
#include "node.h"

int loom_op_count(void) { return (int)(__stop_loom_ops - __start_loom_ops); }

const char *loom_op_name(int i) {
  if (i < 0 || i >= loom_op_count())
    return NULL;
  return __start_loom_ops[i].name;
}
