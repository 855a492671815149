/* PyTorch parity of nn layers, pooling and whole models: each case of
 * tests/data/nn_layers.safetensors (scripts/gen_nn_reference.py) is rebuilt
 * with loom, its state dict loaded by PyTorch's names, and the output and
 * every gradient of sum(out * r) compared with torch's, which torch
 * computed in float64 from the same float32 values: the errors measured
 * are loom's own. The interop tests
 * load torch models' state dicts into loom models built from the same
 * layers, and write loom models for scripts/check_interop_reverse.py. */
#include "layer_forward.h"
#include "parity_util.h"

#define RTOL 1e-5
#define ATOL 1e-6

PARITY_REFERENCE(ref, "nn_layers.safetensors")
static parity_stat layer_stat = {"nn layers", 0, ""};
static parity_stat interop_stat = {"interop models", 0, ""};

/* Loads the case's "state." entries into m (strict: names must match). */
static void load_state(loom_module *m, const char *c) {
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s.state.", c);
  loom_tensor_map *sd = parity_submap(ref, prefix);
  int rc = loom_module_load_state_dict(m, sd, true);
  loom_tensor_map_free(sd);
  ck_assert_msg(rc == 0, "%s: load_state_dict: %s", c, loom_last_error());
}

/* Every "grad." entry of the case names an input or a parameter of m, and
 * every float input and parameter has one. */
static void check_grads(const char *c, loom_module *m, loom_tensor *const *in,
                        const char *const *names, int n_in) {
  char prefix[128];
  snprintf(prefix, sizeof prefix, "%s.grad.", c);
  size_t np = strlen(prefix);
  loom_tensor_map *params = m ? loom_module_named_parameters(m) : NULL;
  int checked = 0, expected = params ? loom_tensor_map_count(params) : 0;
  for (int k = 0; k < n_in; k++)
    expected += loom_requires_grad(in[k]);
  for (int i = 0; i < loom_tensor_map_count(ref); i++) {
    const char *name = loom_tensor_map_name(ref, i);
    if (strncmp(name, prefix, np) != 0)
      continue;
    loom_tensor *t = NULL;
    for (int k = 0; k < n_in && !t; k++)
      if (strcmp(names[k], name + np) == 0)
        t = in[k];
    if (!t && params)
      t = loom_tensor_map_get(params, name + np);
    ck_assert_msg(t != NULL, "%s: no input or parameter for it", name);
    ck_assert_msg(loom_grad(t) != NULL, "%s: no gradient arrived", name);
    parity_check(&layer_stat, loom_grad(t), loom_tensor_map_at(ref, i), RTOL,
                 ATOL, name);
    checked++;
  }
  loom_tensor_map_free(params);
  ck_assert_msg(checked == expected, "%s: %d gradients checked, %d expected", c,
                checked, expected);
}

/* Runs one recorded forward call: inputs "<c>.in.<names[k]>", output
 * "<c>.out", and the gradients of sum(out * r). */
static void run_forward(const char *c, loom_module *m, void *layer,
                        forward_fn f, const char *const *names, int n_in) {
  char prefix[128], what[160];
  snprintf(prefix, sizeof prefix, "%s.in.", c);
  loom_tensor *in[4];
  for (int k = 0; k < n_in; k++)
    in[k] = parity_leaf(parity_ref(ref, prefix, names[k]));
  loom_tensor *y = f(layer, in);
  snprintf(what, sizeof what, "%s.out", c);
  parity_check(&layer_stat, y, parity_ref(ref, c, ".out"), RTOL, ATOL, what);
  loom_tensor *loss = loom_sum_all(loom_mul(y, parity_ref(ref, c, ".r")));
  ck_assert_msg(loom_backward(loss) == 0, "%s: backward: %s", c,
                loom_last_error());
  check_grads(c, m, in, names, n_in);
}

/* A module case: state dict in, one forward call, gradients out. */
static void module_case(const char *c, loom_module *m, forward_fn f,
                        const char *const *names, int n_in) {
  ck_assert_msg(m != NULL, "%s: %s", c, loom_last_error());
  load_state(m, c);
  run_forward(c, m, m, f, names, n_in);
  loom_module_free(m);
}

#define INPUTS(...)                                                            \
  (const char *const[]){__VA_ARGS__},                                          \
      (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

/* ---- forward calls ---- */

static loom_tensor *fwd_max_pool(void *o, loom_tensor *const *in) {
  return loom_max_pool2d(in[0], *(loom_pool2d_opts *)o, NULL);
}
static loom_tensor *fwd_avg_pool(void *o, loom_tensor *const *in) {
  return loom_avg_pool2d(in[0], *(loom_pool2d_opts *)o);
}
static loom_tensor *fwd_adaptive_pool(void *o, loom_tensor *const *in) {
  const loom_pool2d_opts *p = o;
  return loom_adaptive_avg_pool2d(in[0], p->kernel[0], p->kernel[1]);
}

/* ---- the cases, in the order of the reference file ---- */

typedef struct {
  const char *name;
  void (*run)(const char *name, loom_pool2d_opts pool);
  loom_pool2d_opts pool; /* pooling cases (adaptive: kernel = output size) */
} layer_case;

#define MODULE_RUN(fn, make, forward, ...)                                     \
  static void fn(const char *c, loom_pool2d_opts unused) {                     \
    (void)unused;                                                              \
    module_case(c, (loom_module *)(make), forward, INPUTS(__VA_ARGS__));       \
  }

MODULE_RUN(run_linear_bias, loom_linear_layer_new(4, 3, true), fwd_linear, "x")
MODULE_RUN(run_linear_nobias, loom_linear_layer_new(4, 3, false), fwd_linear,
           "x")
MODULE_RUN(run_bilinear, loom_bilinear_new(3, 4, 2, true), fwd_bilinear, "x1",
           "x2")
MODULE_RUN(run_embedding, loom_embedding_layer_new(6, 3, 1), fwd_embedding,
           "indices")
MODULE_RUN(run_conv_basic,
           loom_conv2d_layer_new(2, 3, 3, 3, (loom_conv2d_opts){0}, true),
           fwd_conv, "x")
MODULE_RUN(run_conv_stride_pad,
           loom_conv2d_layer_new(2, 4, 3, 2,
                                 (loom_conv2d_opts){.stride = {2, 1},
                                                    .padding = {1, 2}},
                                 true),
           fwd_conv, "x")
MODULE_RUN(run_conv_dilation,
           loom_conv2d_layer_new(2, 2, 3, 3,
                                 (loom_conv2d_opts){.padding = {1, 1},
                                                    .dilation = {2, 2}},
                                 true),
           fwd_conv, "x")
MODULE_RUN(run_conv_groups,
           loom_conv2d_layer_new(4, 6, 3, 3,
                                 (loom_conv2d_opts){.padding = {1, 1},
                                                    .groups = 2},
                                 false),
           fwd_conv, "x")
MODULE_RUN(run_conv_depthwise,
           loom_conv2d_layer_new(4, 4, 3, 3,
                                 (loom_conv2d_opts){.stride = {2, 2},
                                                    .padding = {2, 2},
                                                    .dilation = {2, 2},
                                                    .groups = 4},
                                 true),
           fwd_conv, "x")
MODULE_RUN(run_layernorm_1,
           loom_layer_norm_layer_new(1, (int64_t[]){5}, 1e-5, true),
           fwd_layer_norm, "x")
MODULE_RUN(run_layernorm_2,
           loom_layer_norm_layer_new(2, (int64_t[]){3, 5}, 1e-3, true),
           fwd_layer_norm, "x")
MODULE_RUN(run_highway, loom_highway_new(4, -1), fwd_highway, "x")

/* max_norm: the distinct rows looked up are renormalised in place before
 * the lookup; the weight after the call is compared too. */
static void run_embedding_max_norm(const char *c, loom_pool2d_opts unused) {
  (void)unused;
  loom_embedding_layer *e = loom_embedding_layer_new(6, 3, -1);
  ck_assert_loom(e);
  e->max_norm = 1.5;
  e->norm_type = 3;
  load_state(&e->base, c);
  run_forward(c, &e->base, e, fwd_embedding, INPUTS("indices"));
  char what[160];
  snprintf(what, sizeof what, "%s.after.weight", c);
  parity_check(&layer_stat, e->weight, loom_tensor_map_get(ref, what), RTOL,
               ATOL, what);
  loom_embedding_layer_free(e);
}

/* Training mode: a first forward call on x0 (not differentiated), then the
 * recorded one on x; the running statistics after both are compared. */
static void batch_norm_train(const char *c, double eps, double momentum) {
  loom_batch_norm_layer *b =
      loom_batch_norm_layer_new(3, eps, momentum, true, true);
  ck_assert_loom(b);
  load_state(&b->base, c);
  char what[160];
  snprintf(what, sizeof what, "%s.out0", c);
  loom_tensor *y0 =
      loom_batch_norm_layer_forward(b, parity_ref(ref, c, ".in.x0"));
  parity_check(&layer_stat, y0, parity_ref(ref, c, ".out0"), RTOL, ATOL, what);
  run_forward(c, &b->base, b, fwd_batch_norm, INPUTS("x"));
  loom_tensor_map *sd = loom_module_state_dict(&b->base);
  const char *bufs[] = {"running_mean", "running_var", "num_batches_tracked"};
  for (int i = 0; i < 3; i++) {
    snprintf(what, sizeof what, "%s.after.%s", c, bufs[i]);
    parity_check(&layer_stat, loom_tensor_map_get(sd, bufs[i]),
                 loom_tensor_map_get(ref, what), RTOL, ATOL, what);
  }
  loom_tensor_map_free(sd);
  loom_batch_norm_layer_free(b);
}

static void run_bn1d_train(const char *c, loom_pool2d_opts unused) {
  (void)unused;
  batch_norm_train(c, 1e-5, 0.1);
}
static void run_bn1d_3d_train(const char *c, loom_pool2d_opts unused) {
  (void)unused;
  batch_norm_train(c, 1e-5, 0.3);
}
static void run_bn2d_train(const char *c, loom_pool2d_opts unused) {
  (void)unused;
  batch_norm_train(c, 1e-3, 0.1);
}

static void batch_norm_eval(const char *c, int64_t features) {
  loom_batch_norm_layer *b =
      loom_batch_norm_layer_new(features, 1e-5, 0.1, true, true);
  ck_assert_loom(b);
  loom_module_train(&b->base, false);
  module_case(c, &b->base, fwd_batch_norm, INPUTS("x"));
}

static void run_bn1d_eval(const char *c, loom_pool2d_opts unused) {
  (void)unused;
  batch_norm_eval(c, 3);
}
static void run_bn2d_eval(const char *c, loom_pool2d_opts unused) {
  (void)unused;
  batch_norm_eval(c, 2);
}

static void run_max_pool(const char *c, loom_pool2d_opts o) {
  run_forward(c, NULL, &o, fwd_max_pool, INPUTS("x"));
}
static void run_avg_pool(const char *c, loom_pool2d_opts o) {
  run_forward(c, NULL, &o, fwd_avg_pool, INPUTS("x"));
}
static void run_adaptive_pool(const char *c, loom_pool2d_opts o) {
  run_forward(c, NULL, &o, fwd_adaptive_pool, INPUTS("x"));
}

#define MODULE(n, f)                                                           \
  { .name = n, .run = f }
#define POOL(n, f, ...)                                                        \
  {                                                                            \
    .name = n, .run = f, .pool = { __VA_ARGS__ }                               \
  }

static const layer_case cases[] = {
    MODULE("linear_bias", run_linear_bias),
    MODULE("linear_nobias", run_linear_nobias),
    MODULE("linear_3d", run_linear_bias),
    MODULE("bilinear", run_bilinear),
    MODULE("embedding", run_embedding),
    MODULE("conv_basic", run_conv_basic),
    MODULE("conv_stride_pad", run_conv_stride_pad),
    MODULE("conv_dilation", run_conv_dilation),
    MODULE("conv_groups", run_conv_groups),
    MODULE("conv_depthwise", run_conv_depthwise),
    MODULE("bn1d_train", run_bn1d_train),
    MODULE("bn1d_3d_train", run_bn1d_3d_train),
    MODULE("bn2d_train", run_bn2d_train),
    MODULE("bn1d_eval", run_bn1d_eval),
    MODULE("bn2d_eval", run_bn2d_eval),
    MODULE("layernorm_1", run_layernorm_1),
    MODULE("layernorm_2", run_layernorm_2),
    POOL("max_pool_basic", run_max_pool, .kernel = {2, 2}),
    POOL("max_pool_ceil", run_max_pool, .kernel = {3, 3}, .stride = {2, 2},
         .padding = {1, 1}, .ceil_mode = true),
    POOL("max_pool_dilation", run_max_pool, .kernel = {2, 3}, .stride = {1, 1},
         .dilation = {2, 1}),
    POOL("avg_pool_incl", run_avg_pool, .kernel = {3, 3}, .stride = {2, 2},
         .padding = {1, 1}),
    POOL("avg_pool_excl", run_avg_pool, .kernel = {3, 3}, .stride = {2, 2},
         .padding = {1, 1}, .exclude_pad = true),
    POOL("avg_pool_ceil", run_avg_pool, .kernel = {2, 2}, .ceil_mode = true),
    POOL("avg_pool_ceil_pad_incl", run_avg_pool, .kernel = {3, 3},
         .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true),
    POOL("avg_pool_ceil_pad_excl", run_avg_pool, .kernel = {3, 3},
         .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true,
         .exclude_pad = true),
    POOL("adaptive_avg_pool", run_adaptive_pool, .kernel = {3, 2}),
    MODULE("highway", run_highway),
    MODULE("embedding_max_norm", run_embedding_max_norm),
};
#define N_CASES ((int)(sizeof cases / sizeof cases[0]))

START_TEST(test_layer) { cases[_i].run(cases[_i].name, cases[_i].pool); }
END_TEST

/* Every case in the file has a C counterpart above. */
START_TEST(test_every_case_is_run) {
  ck_assert_int_eq(parity_count(ref, "", ".out"), N_CASES);
  for (int i = 0; i < N_CASES; i++)
    ck_assert_msg(parity_find(ref, cases[i].name, ".out") != NULL,
                  "no case '%s' in the file", cases[i].name);
}
END_TEST

/* ---- interop: whole torch models ---- */

typedef struct {
  loom_module base;
  loom_conv2d_layer *conv;
  loom_linear_layer *fc;
} interop_cnn;

typedef struct {
  loom_module base;
  loom_linear_layer *fc1, *fc2;
  loom_batch_norm_layer *bn;
  loom_layer_norm_layer *norm;
} interop_mlp;

#define CHILD(m, name, make)                                                   \
  (void *)loom_module_add_child(&(m)->base, name, (loom_module *)(make))

static loom_module *cnn_new(void) {
  interop_cnn *m = calloc(1, sizeof *m);
  ck_assert_ptr_nonnull(m);
  loom_module_init(&m->base, "InteropCNN", NULL);
  m->conv = CHILD(m, "conv",
                  loom_conv2d_layer_new(
                      1, 4, 3, 3, (loom_conv2d_opts){.padding = {1, 1}}, true));
  m->fc = CHILD(m, "fc", loom_linear_layer_new(4 * 4 * 4, 5, true));
  ck_assert_msg(m->conv && m->fc, "%s", loom_last_error());
  return &m->base;
}

static loom_tensor *cnn_forward(loom_module *base, const loom_tensor *x) {
  interop_cnn *m = (interop_cnn *)base;
  loom_tensor *h = loom_relu(loom_conv2d_layer_forward(m->conv, x));
  h = loom_max_pool2d(h, (loom_pool2d_opts){.kernel = {2, 2}}, NULL);
  return loom_linear_layer_forward(m->fc, loom_flatten(h, 1, -1));
}

static loom_module *mlp_new(void) {
  interop_mlp *m = calloc(1, sizeof *m);
  ck_assert_ptr_nonnull(m);
  loom_module_init(&m->base, "InteropMLP", NULL);
  m->fc1 = CHILD(m, "fc1", loom_linear_layer_new(6, 8, true));
  m->bn = CHILD(m, "bn", loom_batch_norm_layer_new(8, 1e-5, 0.1, true, true));
  m->norm = CHILD(m, "norm",
                  loom_layer_norm_layer_new(1, (int64_t[]){8}, 1e-5, true));
  m->fc2 = CHILD(m, "fc2", loom_linear_layer_new(8, 3, true));
  ck_assert_msg(m->fc1 && m->bn && m->norm && m->fc2, "%s", loom_last_error());
  return &m->base;
}

static loom_tensor *mlp_forward(loom_module *base, const loom_tensor *x) {
  interop_mlp *m = (interop_mlp *)base;
  loom_tensor *h = loom_linear_layer_forward(m->fc1, x);
  h = loom_tanh(loom_batch_norm_layer_forward(m->bn, h));
  return loom_linear_layer_forward(m->fc2,
                                   loom_layer_norm_layer_forward(m->norm, h));
}

typedef struct {
  const char *name;
  loom_module *(*make)(void);
  loom_tensor *(*forward)(loom_module *m, const loom_tensor *x);
} interop_model;

static const interop_model models[] = {
    {"cnn", cnn_new, cnn_forward},
    {"mlp", mlp_new, mlp_forward},
};

static void out_path(char *buf, size_t n, const char *name, const char *tag) {
  const char *dir = getenv("TMPDIR");
  snprintf(buf, n, "%s/loom_interop_%s%s.safetensors",
           dir && *dir ? dir : "/tmp", name, tag);
}

/* torch's state dict loads by name (strict) and gives torch's output. */
START_TEST(test_interop_from_torch) {
  const interop_model *im = &models[_i];
  char file[128], what[160];
  snprintf(file, sizeof file, "interop_%s.safetensors", im->name);
  loom_tensor_map *sd = parity_load(file);
  snprintf(file, sizeof file, "interop_%s_io.safetensors", im->name);
  loom_tensor_map *io = parity_load(file);
  loom_module *m = im->make();
  loom_module_train(m, false);
  ck_assert_msg(loom_module_load_state_dict(m, sd, true) == 0, "%s: %s",
                im->name, loom_last_error());
  loom_tensor *y = im->forward(m, loom_tensor_map_get(io, "input"));
  snprintf(what, sizeof what, "interop_%s output", im->name);
  parity_check(&interop_stat, y, loom_tensor_map_get(io, "output"), RTOL, ATOL,
               what);
  loom_module_free(m);
  loom_tensor_map_free(sd);
  loom_tensor_map_free(io);
}
END_TEST

/* The other way: a model with loom's own (seeded) weights is saved as a
 * state dict, with an input and loom's output beside it, for
 * scripts/check_interop_reverse.py; here the files must load back into a
 * fresh loom model and give the same output. */
START_TEST(test_interop_to_torch) {
  const interop_model *im = &models[_i];
  char file[128], state_path[512], io_path[512], what[160];
  snprintf(file, sizeof file, "interop_%s_io.safetensors", im->name);
  loom_tensor_map *io = parity_load(file);
  loom_tensor *x = loom_tensor_map_get(io, "input");
  loom_manual_seed(20240 + (uint64_t)_i);
  loom_module *m = im->make();
  if (strcmp(im->name, "mlp") == 0) {
    /* Non-default statistics and affine values, so every tensor counts. */
    interop_mlp *p = (interop_mlp *)m;
    ck_assert_int_eq(loom_init_uniform_(p->bn->running_mean, -1, 1, NULL), 0);
    ck_assert_int_eq(loom_init_uniform_(p->bn->running_var, 0.5, 2, NULL), 0);
    ck_assert_int_eq(loom_init_uniform_(p->bn->weight, 0.5, 2, NULL), 0);
    ck_assert_int_eq(loom_init_uniform_(p->norm->bias, -1, 1, NULL), 0);
    loom_fill_(p->bn->num_batches_tracked, 5);
  }
  loom_module_train(m, false);
  loom_tensor *y = im->forward(m, x);
  ck_assert_loom(y);

  out_path(state_path, sizeof state_path, im->name, "");
  out_path(io_path, sizeof io_path, im->name, "_io");
  loom_tensor_map *sd = loom_module_state_dict(m);
  loom_tensor_map *mine = loom_tensor_map_new();
  ck_assert_int_eq(loom_tensor_map_set(mine, "input", x), 0);
  ck_assert_int_eq(loom_tensor_map_set(mine, "output", loom_detach(y)), 0);
  ck_assert_int_eq(loom_tensor_map_set_meta(sd, "written_by",
                                            "loom "
                                            "test_nn_parity"),
                   0);
  ck_assert_msg(loom_safetensors_save(state_path, sd) == 0 &&
                    loom_safetensors_save(io_path, mine) == 0,
                "%s", loom_last_error());
  loom_tensor_map_free(sd);
  loom_tensor_map_free(mine);

  loom_tensor_map *back = loom_safetensors_load(state_path);
  ck_assert_loom(back);
  loom_module *m2 = im->make();
  loom_module_train(m2, false);
  ck_assert_msg(loom_module_load_state_dict(m2, back, true) == 0, "%s",
                loom_last_error());
  snprintf(what, sizeof what, "interop_%s reloaded", im->name);
  parity_check(&interop_stat, im->forward(m2, x), y, 0, 0, what);
  loom_tensor_map_free(back);
  loom_module_free(m);
  loom_module_free(m2);
  loom_tensor_map_free(io);
}
END_TEST

int main(void) {
  Suite *s = suite_create("nn_parity");
  TCase *tc = tcase_create("layers");
  tcase_add_unchecked_fixture(tc, ref_open, ref_close);
  tcase_add_checked_fixture(tc, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(tc, 120);
  tcase_add_loop_test(tc, test_layer, 0, N_CASES);
  tcase_add_test(tc, test_every_case_is_run);
  suite_add_tcase(s, tc);
  TCase *ti = tcase_create("interop");
  tcase_add_checked_fixture(ti, loom_test_setup, loom_test_teardown);
  tcase_set_timeout(ti, 120);
  int n_models = (int)(sizeof models / sizeof models[0]);
  tcase_add_loop_test(ti, test_interop_from_torch, 0, n_models);
  tcase_add_loop_test(ti, test_interop_to_torch, 0, n_models);
  suite_add_tcase(s, ti);
  int rc = loom_run_suite(s);
  parity_report(&layer_stat);
  parity_report(&interop_stat);
  return rc;
}
