/* loom: a dynamic autograd tensor framework in C11. One include for all of
 * it: tensors, ops and autograd, layers, optimizers. */
#ifndef LOOM_H
#define LOOM_H

#include "autograd/autograd.h"
#include "nn/nn.h"
#include "optim/optim.h"
#include "tensor/file.h"
#include "tensor/safetensors.h"
#include "tensor/tensor.h"
#include "tensor/tensor_map.h"

#endif
