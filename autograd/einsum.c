/* torch.einsum: the equation is parsed into a list of labels per operand,
 * then evaluated as a composition of differentiable ops, so autograd
 * derives the backward and its backward. A label repeated within one
 * operand takes a diagonal (mask and sum); a label found in one operand
 * only and not in the output is summed at once; then the operands are
 * contracted left to right, each pair by one bmm whose batch dims are the
 * shared labels still needed (by the output or a later operand), whose
 * inner dim is the shared labels no longer needed, and whose rows and
 * columns are the labels of one side alone. */
#include "node.h"

/* Labels: 'A'..'Z' are 0..25, 'a'..'z' 26..51 (the order of an implicit
 * output, as PyTorch sorts it), the dims of an ellipsis 52.. (aligned at
 * the right, like broadcasting, when operands' ellipses differ in rank). */
enum { N_LETTERS = 52, N_LABELS = N_LETTERS + LOOM_MAX_DIMS };

typedef struct {
  const loom_tensor *t;
  int ndim;
  int label[LOOM_MAX_DIMS];
} term;

static int letter_label(char c) {
  if (c >= 'A' && c <= 'Z')
    return c - 'A';
  if (c >= 'a' && c <= 'z')
    return c - 'a' + 26;
  return -1;
}

static char letter(int l) { return (char)(l < 26 ? 'A' + l : 'a' + l - 26); }

/* Reads one term's subscripts from s up to `end` into sub (letters' labels,
 * -1 for an ellipsis: 8 letters and one ellipsis at most); returns how
 * many, or -1 with an error naming the term by `what`. */
static int read_term(const char *s, const char *end, int *sub,
                     const char *what) {
  int n = 0;
  bool ellipsis = false;
  for (const char *c = s; c < end; c++) {
    if (*c == ' ')
      continue;
    int l = letter_label(*c);
    if (*c == '.' && (ellipsis || end - c < 3 || c[1] != '.' || c[2] != '.')) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "einsum: a '.' in %s that is not part of one ellipsis "
                     "'...'",
                     what);
      return -1;
    }
    if (*c != '.' && l < 0) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "einsum: '%c' in %s (subscripts are letters a-z and "
                     "A-Z, with one '...' at most)",
                     *c, what);
      return -1;
    }
    if (*c != '.' && n - ellipsis == LOOM_MAX_DIMS) {
      loom_set_error(LOOM_ERR_ARGUMENT, "einsum: more than %d subscripts in %s",
                     LOOM_MAX_DIMS, what);
      return -1;
    }
    if (*c == '.') {
      ellipsis = true;
      c += 2;
    }
    sub[n++] = l;
  }
  return n;
}

/* The parsed equation: each operand's labels, the output's, and the size
 * of each label. */
typedef struct {
  term in[LOOM_EINSUM_MAX_OPERANDS];
  int n_in;
  int out[LOOM_MAX_DIMS];
  int n_out;
  int64_t size[N_LABELS]; /* the size each label broadcasts to */
} equation;

/* Turns one input term's subscripts into labels for tensor t (ellipsis
 * dims filled in from t's rank). */
static bool label_term(const int *sub, int n, const loom_tensor *t, int k,
                       int *widest, term *out) {
  int letters = 0, at = -1;
  for (int i = 0; i < n; i++)
    if (sub[i] < 0)
      at = i;
    else
      letters++;
  int wide = t->ndim - letters;
  if (at < 0 ? wide != 0 : wide < 0) {
    loom_set_error(LOOM_ERR_SHAPE,
                   "einsum: operand %d is %s, but its term has %d "
                   "subscripts%s",
                   k, loom_shape_text(t), letters,
                   at < 0 ? " and no ellipsis" : " besides the ellipsis");
    return false;
  }
  out->t = t;
  out->ndim = t->ndim;
  for (int i = 0, d = 0; i < n; i++)
    if (sub[i] >= 0)
      out->label[d++] = sub[i];
    else /* ellipsis dims: labels relabelled once the widest is known */
      for (int j = 0; j < wide; j++)
        out->label[d++] = N_LETTERS + LOOM_MAX_DIMS - wide + j;
  if (wide > *widest)
    *widest = wide;
  return true;
}

static bool parse(const char *eq, loom_tensor *const *ops, int n, equation *e) {
  /* Messages quote the equation and its characters: a byte that is not
   * printable ASCII (one of a UTF-8 letter's, a control), never part of an
   * equation, is named by its value first, or the message would not be
   * valid UTF-8. */
  for (const char *c = eq; *c; c++)
    if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "einsum: byte 0x%02x at position %td of the equation "
                     "(subscripts are letters a-z and A-Z, with one '...' at "
                     "most)",
                     (unsigned char)*c, c - eq);
      return false;
    }
  const char *arrow = strstr(eq, "->");
  const char *lhs_end = arrow ? arrow : eq + strlen(eq);
  int widest = 0, sub[LOOM_MAX_DIMS + 1], count[N_LABELS] = {0};
  e->n_in = 0;
  for (const char *s = eq;; e->n_in++) {
    const char *comma = memchr(s, ',', (size_t)(lhs_end - s));
    const char *end = comma ? comma : lhs_end;
    if (e->n_in == n) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "einsum: the equation '%s' has more terms than the %d "
                     "operands given",
                     eq, n);
      return false;
    }
    char what[32];
    snprintf(what, sizeof what, "operand %d's term", e->n_in);
    int m = read_term(s, end, sub, what);
    if (m < 0 ||
        !label_term(sub, m, ops[e->n_in], e->n_in, &widest, &e->in[e->n_in]))
      return false;
    if (!comma)
      break;
    s = comma + 1;
  }
  if (++e->n_in != n) {
    loom_set_error(LOOM_ERR_ARGUMENT,
                   "einsum: the equation '%s' has %d terms for %d operands", eq,
                   e->n_in, n);
    return false;
  }
  /* The ellipsis dims as labels N_LETTERS .. N_LETTERS + widest - 1; each
   * label's size the one its dims broadcast to */
  bool seen[N_LABELS] = {false};
  for (int k = 0; k < n; k++) {
    term *t = &e->in[k];
    for (int d = 0; d < t->ndim; d++) {
      if (t->label[d] >= N_LETTERS)
        t->label[d] -= LOOM_MAX_DIMS - widest;
      int l = t->label[d];
      int64_t s = t->t->shape[d];
      for (int j = 0; j < d; j++)
        if (t->label[j] == l && t->t->shape[j] != s) {
          loom_set_error(LOOM_ERR_SHAPE,
                         "einsum: subscript %c repeated in operand %d %s "
                         "with sizes %lld and %lld",
                         letter(l), k, loom_shape_text(t->t),
                         (long long)t->t->shape[j], (long long)s);
          return false;
        }
      if (!seen[l] || e->size[l] == 1)
        e->size[l] = s;
      else if (s != 1 && s != e->size[l]) {
        if (l >= N_LETTERS)
          loom_set_error(LOOM_ERR_SHAPE,
                         "einsum: the ellipsis of operand %d %s does not "
                         "broadcast with the other operands'",
                         k, loom_shape_text(t->t));
        else
          loom_set_error(LOOM_ERR_SHAPE,
                         "einsum: subscript %c has size %lld in operand %d "
                         "and %lld before (sizes must be equal or 1)",
                         letter(l), (long long)s, k, (long long)e->size[l]);
        return false;
      }
      seen[l] = true;
      count[l]++;
    }
  }
  e->n_out = 0;
  if (!arrow) { /* the ellipsis, then the letters found once, sorted */
    for (int l = N_LETTERS; l < N_LETTERS + widest; l++)
      e->out[e->n_out++] = l;
    for (int l = 0; l < N_LETTERS; l++)
      if (count[l] == 1) {
        if (e->n_out == LOOM_MAX_DIMS) {
          loom_set_error(LOOM_ERR_SHAPE,
                         "einsum: an output of more than %d dims for '%s'",
                         LOOM_MAX_DIMS, eq);
          return false;
        }
        e->out[e->n_out++] = l;
      }
    return true;
  }
  int m = read_term(arrow + 2, arrow + strlen(arrow), sub, "the output");
  if (m < 0)
    return false;
  for (int i = 0; i < m; i++) {
    if (sub[i] < 0) {
      for (int l = N_LETTERS; l < N_LETTERS + widest; l++) {
        if (e->n_out == LOOM_MAX_DIMS) {
          loom_set_error(LOOM_ERR_SHAPE,
                         "einsum: an output of more than %d dims for '%s'",
                         LOOM_MAX_DIMS, eq);
          return false;
        }
        e->out[e->n_out++] = l;
      }
      continue;
    }
    char c = letter(sub[i]);
    if (!count[sub[i]]) {
      loom_set_error(LOOM_ERR_ARGUMENT,
                     "einsum: output subscript %c is in no operand's term", c);
      return false;
    }
    for (int j = 0; j < e->n_out; j++)
      if (e->out[j] == sub[i]) {
        loom_set_error(LOOM_ERR_ARGUMENT,
                       "einsum: output subscript %c appears more than once", c);
        return false;
      }
    if (e->n_out == LOOM_MAX_DIMS) {
      loom_set_error(LOOM_ERR_SHAPE,
                     "einsum: an output of more than %d dims for '%s'",
                     LOOM_MAX_DIMS, eq);
      return false;
    }
    e->out[e->n_out++] = sub[i];
  }
  return true;
}

static int find(const int *labels, int n, int l) {
  for (int i = 0; i < n; i++)
    if (labels[i] == l)
      return i;
  return -1;
}

/* Whether label l is needed after operand k: by the output or by a later
 * operand. */
static bool needed_after(const equation *e, int k, int l) {
  if (find(e->out, e->n_out, l) >= 0)
    return true;
  for (int j = k + 1; j < e->n_in; j++)
    if (find(e->in[j].label, e->in[j].ndim, l) >= 0)
      return true;
  return false;
}

/* Removes dim d of t's term (after a sum over it). */
static void drop_dim(term *t, int d) {
  memmove(&t->label[d], &t->label[d + 1],
          (size_t)(t->ndim - d - 1) * sizeof t->label[0]);
  t->ndim--;
}

/* Operand k ready for contraction: its diagonals taken and its labels
 * that no other operand nor the output has summed. */
static bool prepare(const equation *e, int k, term *t) {
  for (int d = 1; d < t->ndim && t->t; d++) {
    int first = find(t->label, d, t->label[d]);
    if (first < 0)
      continue;
    /* t * eye over (first, d), summed over d: the diagonal at `first` */
    int64_t shape[LOOM_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++)
      shape[i] = i == first || i == d ? t->t->shape[i] : 1;
    loom_tensor *eye = loom_eye(t->t->dtype, shape[d], shape[d]);
    t->t = loom_sum(loom_mul(t->t, loom_reshape(eye, t->ndim, shape)), &d, 1,
                    false);
    drop_dim(t, d--);
  }
  int dims[LOOM_MAX_DIMS], n = 0;
  for (int d = 0; d < t->ndim; d++) {
    int l = t->label[d];
    bool elsewhere = find(e->out, e->n_out, l) >= 0;
    for (int j = 0; j < e->n_in && !elsewhere; j++)
      elsewhere = j != k && find(e->in[j].label, e->in[j].ndim, l) >= 0;
    if (!elsewhere)
      dims[n++] = d;
  }
  if (n && t->t) {
    t->t = loom_sum(t->t, dims, n, false);
    for (int i = n - 1; i >= 0; i--)
      drop_dim(t, dims[i]);
  }
  return t->t != NULL;
}

/* Sizes of t's dims at positions dims[0..n), into shape, and their
 * product (one tensor's sizes: it cannot overflow). */
static int64_t product(const term *t, const int *dims, int n, int64_t *shape) {
  int64_t p = 1;
  for (int i = 0; i < n; i++)
    p *= shape[i] = t->t->shape[dims[i]];
  return p;
}

/* a and b contracted into a; labels needed after operand k are kept. */
static bool contract(const equation *e, int k, term *a, term *b) {
  /* broadcast size-1 dims of a label the other side has larger */
  int64_t sa[LOOM_MAX_DIMS], sb[LOOM_MAX_DIMS];
  memcpy(sa, a->t->shape, sizeof sa);
  memcpy(sb, b->t->shape, sizeof sb);
  for (int i = 0; i < a->ndim; i++) {
    int j = find(b->label, b->ndim, a->label[i]);
    if (j >= 0)
      sa[i] = sb[j] = e->size[a->label[i]];
  }
  a->t = loom_expand(a->t, a->ndim, sa);
  b->t = loom_expand(b->t, b->ndim, sb);
  if (!a->t || !b->t)
    return false;
  int batch[2][LOOM_MAX_DIMS], inner[2][LOOM_MAX_DIMS], rows[LOOM_MAX_DIMS],
      cols[LOOM_MAX_DIMS], nb = 0, ni = 0, nr = 0, nc = 0;
  for (int i = 0; i < a->ndim; i++) {
    int j = find(b->label, b->ndim, a->label[i]);
    if (j < 0)
      rows[nr++] = i;
    else if (needed_after(e, k, a->label[i])) {
      batch[0][nb] = i;
      batch[1][nb++] = j;
    } else {
      inner[0][ni] = i;
      inner[1][ni++] = j;
    }
  }
  for (int j = 0; j < b->ndim; j++)
    if (find(a->label, a->ndim, b->label[j]) < 0)
      cols[nc++] = j;
  if (nb + nr + nc > LOOM_MAX_DIMS) {
    loom_set_error(LOOM_ERR_SHAPE,
                   "einsum: contracting operand %d gives %d dims (at most "
                   "%d)",
                   k, nb + nr + nc, LOOM_MAX_DIMS);
    return false;
  }
  /* a as (batch, rows, inner), b as (batch, inner, cols) */
  int pa[LOOM_MAX_DIMS], pb[LOOM_MAX_DIMS], label[LOOM_MAX_DIMS];
  int64_t shape[LOOM_MAX_DIMS], unused[LOOM_MAX_DIMS];
  memcpy(pa, batch[0], (size_t)nb * sizeof(int));
  memcpy(pa + nb, rows, (size_t)nr * sizeof(int));
  memcpy(pa + nb + nr, inner[0], (size_t)ni * sizeof(int));
  memcpy(pb, batch[1], (size_t)nb * sizeof(int));
  memcpy(pb + nb, inner[1], (size_t)ni * sizeof(int));
  memcpy(pb + nb + ni, cols, (size_t)nc * sizeof(int));
  int64_t nbatch = product(a, batch[0], nb, shape);
  int64_t m = product(a, rows, nr, shape + nb);
  int64_t n = product(b, cols, nc, shape + nb + nr);
  int64_t inner_size = product(a, inner[0], ni, unused);
  for (int i = 0; i < nb; i++)
    label[i] = a->label[batch[0][i]];
  for (int i = 0; i < nr; i++)
    label[nb + i] = a->label[rows[i]];
  for (int i = 0; i < nc; i++)
    label[nb + nr + i] = b->label[cols[i]];
  const loom_tensor *x = loom_reshape(loom_permute(a->t, pa), 3,
                                      (int64_t[]){nbatch, m, inner_size});
  const loom_tensor *y = loom_reshape(loom_permute(b->t, pb), 3,
                                      (int64_t[]){nbatch, inner_size, n});
  a->t = loom_reshape(loom_bmm(x, y), nb + nr + nc, shape);
  a->ndim = nb + nr + nc;
  memcpy(a->label, label, sizeof label);
  return a->t != NULL;
}

loom_tensor *loom_einsum(const char *eq, loom_tensor *const *operands, int n) {
  if (!eq || (!operands && n > 0))
    return loom_null_argument("einsum");
  if (n < 1 || n > LOOM_EINSUM_MAX_OPERANDS)
    return LOOM_FAIL(LOOM_ERR_ARGUMENT, "einsum: %d operands (1 to %d)", n,
                     LOOM_EINSUM_MAX_OPERANDS);
  for (int k = 0; k < n; k++)
    if (!operands[k])
      return loom_null_argument("einsum");
    else if (loom__check_float(operands[k], "einsum"))
      return NULL;
  equation e;
  if (!parse(eq, operands, n, &e))
    return NULL;
  term acc = e.in[0];
  if (!prepare(&e, 0, &acc))
    return NULL;
  for (int k = 1; k < n; k++) {
    term next = e.in[k];
    if (!prepare(&e, k, &next) || !contract(&e, k, &acc, &next))
      return NULL;
  }
  /* acc holds the output's labels now, in some order */
  int perm[LOOM_MAX_DIMS];
  for (int i = 0; i < e.n_out; i++)
    perm[i] = find(acc.label, acc.ndim, e.out[i]);
  loom_tensor *out = loom_permute(acc.t, perm);
  /* a fresh tensor even when the equation only permutes its operand */
  return out && acc.t == operands[0] ? loom_clone(out) : out;
}
