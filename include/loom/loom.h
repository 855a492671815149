/* loom: a dynamic autograd tensor framework in C11. One include for all of
 * it: tensors, ops and autograd, layers, optimizers. */
#ifndef LOOM_H
#define LOOM_H

#include "tensor/tensor.h"
#include "tensor/safetensors.h"
#include "autograd/autograd.h"
#include "optim/optim.h"
#include "nn/nn.h"

#endif
