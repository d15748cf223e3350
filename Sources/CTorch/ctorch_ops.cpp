// Tensor operations. Codes for ct_unary/ct_binary/... must match the Swift enums in
// Sources/Torch/Ops.swift (UnaryOp, BinaryOp, ReduceOp).
#include "ctorch_internal.hpp"

#include <ATen/ScalarOps.h>

#include <limits>

using namespace ctorch;

namespace {

at::Tensor unary(int op, const at::Tensor &a) {
  switch (op) {
    case 0: return at::neg(a);
    case 1: return at::exp(a);
    case 2: return at::log(a);
    case 3: return at::sqrt(a);
    case 4: return at::rsqrt(a);
    case 5: return at::abs(a);
    case 6: return at::sigmoid(a);
    case 7: return at::tanh(a);
    case 8: return at::relu(a);
    case 9: return at::gelu(a, "none");
    case 10: return at::gelu(a, "tanh");
    case 11: return a * at::sigmoid(1.702 * a);  // quick_gelu, as CLIP defines it
    case 12: return at::sin(a);
    case 13: return at::cos(a);
    case 14: return at::square(a);
    case 15: return at::reciprocal(a);
    case 16: return at::log_sigmoid(a);
    case 17: return at::sign(a);
    case 18: return at::floor(a);
    case 19: return at::ceil(a);
    case 20: return at::round(a);
    case 21: return at::erf(a);
    case 22: return at::logical_not(a);
    case 23: return at::silu(a);
    case 24: return at::log1p(a);
    case 25: return at::expm1(a);
    case 26: return at::isnan(a);
    case 27: return at::isfinite(a);
    default: TORCH_CHECK(false, "unknown unary op code ", op);
  }
}

at::Tensor binary(int op, const at::Tensor &a, const at::Tensor &b) {
  switch (op) {
    case 0: return at::add(a, b);
    case 1: return at::sub(a, b);
    case 2: return at::mul(a, b);
    case 3: return at::div(a, b);
    case 4: return at::pow(a, b);
    case 5: return at::maximum(a, b);
    case 6: return at::minimum(a, b);
    case 7: return at::eq(a, b);
    case 8: return at::ne(a, b);
    case 9: return at::lt(a, b);
    case 10: return at::le(a, b);
    case 11: return at::gt(a, b);
    case 12: return at::ge(a, b);
    case 13: return at::logical_and(a, b);
    case 14: return at::logical_or(a, b);
    case 15: return at::remainder(a, b);
    case 16: return at::atan2(a, b);
    case 17: return at::floor_divide(a, b);
    default: TORCH_CHECK(false, "unknown binary op code ", op);
  }
}

// A number as the operand of arithmetic on `a`: what ATen's Tensor-Scalar overloads build
// (`wrapped_scalar_tensor`, a 0-d float64 tensor for a floating number), except on float32 /
// float64 tensors, where it is built in the tensor's own dtype. On CPU the TensorIterator
// converts a float64 operand to the tensor's dtype on every call (to → _to_copy → empty_strided
// → copy_), and again in the backward: `x * 0.5` cost three operators instead of one (143 such
// conversions per cached CMAPKD step, torch 2.11). Marked as a wrapped number, it takes part in
// type promotion as ATen's does, and the values are the same: ATen's float kernels compute with
// the number rounded to the tensor's dtype. The reduced-precision kernels read the float64
// original, and integers must stay integers: those keep ATen's operand.
at::Tensor number_operand(const at::Tensor &a, const at::Scalar &s) {
  if (a.scalar_type() != at::kFloat && a.scalar_type() != at::kDouble) return at::native::wrapped_scalar_tensor(s);
  auto n = at::detail::scalar_tensor_static(s, a.scalar_type(), at::kCPU);
  n.unsafeGetTensorImpl()->set_wrapped_number(true);
  return n;
}

at::Tensor binary_scalar(int op, const at::Tensor &a, const at::Scalar &s) {
  switch (op) {
    case 0: return at::add(a, number_operand(a, s));
    case 1: return at::sub(a, number_operand(a, s));
    case 2: return at::mul(a, number_operand(a, s));
    case 3: return at::div(a, number_operand(a, s));
    case 4: return at::pow(a, s);
    case 5: return at::clamp_min(a, s);
    case 6: return at::clamp_max(a, s);
    case 7: return at::eq(a, s);
    case 8: return at::ne(a, s);
    case 9: return at::lt(a, s);
    case 10: return at::le(a, s);
    case 11: return at::gt(a, s);
    case 12: return at::ge(a, s);
    case 15: return at::remainder(a, s);
    case 17: return at::floor_divide(a, s);
    default: TORCH_CHECK(false, "unknown tensor-scalar op code ", op);
  }
}

at::Tensor scalar_binary(int op, const at::Scalar &s, const at::Tensor &a) {
  switch (op) {
    case 0: return at::add(a, number_operand(a, s));
    case 1: return at::rsub(a, number_operand(a, s));
    case 2: return at::mul(a, number_operand(a, s));
    case 3: return at::mul(at::reciprocal(a), number_operand(a, s));  // as torch's __rtruediv__; in place would break autograd
    case 4: return at::pow(s, a);
    default: TORCH_CHECK(false, "unknown scalar-tensor op code ", op);
  }
}

at::Scalar scalar_for(const at::Tensor &a, double s) {
  // Keep integral tensors integral when the scalar is a whole number (x * 2 on int64).
  if (at::isIntegralType(a.scalar_type(), /*includeBool=*/false) && std::floor(s) == s) {
    return at::Scalar(static_cast<int64_t>(s));
  }
  return at::Scalar(s);
}

at::Tensor reduce(int op, const at::Tensor &a, at::IntArrayRef d, bool keepdim) {
  const bool all = d.empty();
  switch (op) {
    case 0: return all && !keepdim ? at::sum(a) : at::sum(a, d, keepdim);
    case 1: return all && !keepdim ? at::mean(a) : at::mean(a, d, keepdim);
    case 2: return all && !keepdim ? at::amax(a, at::IntArrayRef{}, false) : at::amax(a, d, keepdim);
    case 3: return all && !keepdim ? at::amin(a, at::IntArrayRef{}, false) : at::amin(a, d, keepdim);
    case 4: {
      TORCH_CHECK(d.size() <= 1, "prod reduces over one dimension at a time");
      return all ? at::prod(a) : at::prod(a, d[0], keepdim);
    }
    case 5: return at::logsumexp(a, all ? at::IntArrayRef{} : d, keepdim);
    case 6: {
      if (all) return keepdim ? at::all(a).reshape(std::vector<int64_t>(a.dim(), 1)) : at::all(a);
      return at::all(a, d, keepdim);
    }
    case 7: {
      if (all) return keepdim ? at::any(a).reshape(std::vector<int64_t>(a.dim(), 1)) : at::any(a);
      return at::any(a, d, keepdim);
    }
    default: TORCH_CHECK(false, "unknown reduction code ", op);
  }
}

// Softmaxes and losses of bf16/fp16 inputs (mixed precision) are computed and returned in
// float32, as autocast's fp32 policy does for them on CUDA.
bool reduced(const at::Tensor &t) { return t.scalar_type() == at::kBFloat16 || t.scalar_type() == at::kHalf; }
at::Tensor full(const at::Tensor &t) { return reduced(t) ? t.to(at::kFloat) : t; }
std::optional<at::ScalarType> full_dtype(const at::Tensor &t) {
  return reduced(t) ? std::optional<at::ScalarType>(at::kFloat) : std::nullopt;
}
}  // namespace

extern "C" {

ct_tensor ct_unary(int op, ct_tensor a) { CT_TENSOR(unary(op, T(a))); }
ct_tensor ct_binary(int op, ct_tensor a, ct_tensor b) { CT_TENSOR(binary(op, T(a), T(b))); }
ct_tensor ct_binary_scalar(int op, ct_tensor a, double s) { CT_TENSOR(binary_scalar(op, T(a), scalar_for(T(a), s))); }
ct_tensor ct_scalar_binary(int op, double s, ct_tensor a) { CT_TENSOR(scalar_binary(op, scalar_for(T(a), s), T(a))); }

int ct_inplace_binary(int op, ct_tensor a, ct_tensor b, double alpha) {
  CT_STATUS({
    auto &x = T(a);
    const auto &y = T(b);
    switch (op) {
      case 0: x.add_(y, alpha); break;
      case 1: x.sub_(y, alpha); break;
      case 2: x.mul_(y); break;
      case 3: x.div_(y); break;
      case 100: x.copy_(y); break;
      default: TORCH_CHECK(false, "unknown in-place op code ", op);
    }
  });
}

int ct_inplace_scalar(int op, ct_tensor a, double s) {
  CT_STATUS({
    auto &x = T(a);
    switch (op) {
      case 0: x.add_(s); break;
      case 1: x.sub_(s); break;
      case 2: x.mul_(s); break;
      case 3: x.div_(s); break;
      case 100: x.fill_(s); break;
      case 101: x.zero_(); break;
      default: TORCH_CHECK(false, "unknown in-place scalar op code ", op);
    }
  });
}

ct_tensor ct_clamp(ct_tensor a, double lo, double hi, bool has_lo, bool has_hi) {
  CT_TENSOR(at::clamp(T(a), has_lo ? std::optional<at::Scalar>(lo) : std::nullopt,
                      has_hi ? std::optional<at::Scalar>(hi) : std::nullopt));
}
ct_tensor ct_where(ct_tensor c, ct_tensor a, ct_tensor b) { CT_TENSOR(at::where(T(c), T(a), T(b))); }
ct_tensor ct_masked_fill(ct_tensor a, ct_tensor m, double v) { CT_TENSOR(at::masked_fill(T(a), T(m), v)); }
ct_tensor ct_lerp(ct_tensor a, ct_tensor b, double w) { CT_TENSOR(at::lerp(T(a), T(b), w)); }

ct_tensor ct_reduce(int op, ct_tensor a, const int64_t *d, int nd, bool keepdim) {
  CT_TENSOR(reduce(op, T(a), dims(d, nd), keepdim));
}
ct_tensor ct_norm(ct_tensor a, double p, const int64_t *d, int nd, bool keepdim) {
  CT_TENSOR(at::linalg_vector_norm(T(a), p, nd == 0 ? at::OptionalIntArrayRef() : dims(d, nd), keepdim));
}
ct_tensor ct_var(ct_tensor a, const int64_t *d, int nd, int64_t correction, bool keepdim) {
  CT_TENSOR(at::var(T(a), nd == 0 ? at::OptionalIntArrayRef() : dims(d, nd), at::Scalar(correction), keepdim));
}
ct_tensor ct_arg_reduce(int op, ct_tensor a, int64_t dim, bool keepdim) {
  CT_TENSOR(op == 0 ? at::argmax(T(a), dim, keepdim) : at::argmin(T(a), dim, keepdim));
}
ct_tensor ct_cumsum(ct_tensor a, int64_t dim) { CT_TENSOR(at::cumsum(T(a), dim)); }

// Shape.
ct_tensor ct_reshape(ct_tensor a, const int64_t *s, int n) { CT_TENSOR(T(a).reshape(dims(s, n))); }
ct_tensor ct_view(ct_tensor a, const int64_t *s, int n) { CT_TENSOR(T(a).view(dims(s, n))); }
ct_tensor ct_permute(ct_tensor a, const int64_t *d, int n) { CT_TENSOR(T(a).permute(dims(d, n))); }
ct_tensor ct_transpose(ct_tensor a, int64_t d0, int64_t d1) { CT_TENSOR(T(a).transpose(d0, d1)); }
ct_tensor ct_expand(ct_tensor a, const int64_t *s, int n) { CT_TENSOR(T(a).expand(dims(s, n))); }
ct_tensor ct_repeat(ct_tensor a, const int64_t *r, int n) { CT_TENSOR(T(a).repeat(dims(r, n))); }
ct_tensor ct_squeeze(ct_tensor a, int64_t dim) { CT_TENSOR(T(a).squeeze(dim)); }
ct_tensor ct_unsqueeze(ct_tensor a, int64_t dim) { CT_TENSOR(T(a).unsqueeze(dim)); }
ct_tensor ct_flatten(ct_tensor a, int64_t s, int64_t e) { CT_TENSOR(T(a).flatten(s, e)); }
ct_tensor ct_narrow(ct_tensor a, int64_t dim, int64_t start, int64_t len) { CT_TENSOR(T(a).narrow(dim, start, len)); }
ct_tensor ct_slice(ct_tensor a, int64_t dim, int64_t start, int64_t end, int64_t step) {
  CT_TENSOR(T(a).slice(dim, start, end, step));
}
ct_tensor ct_select(ct_tensor a, int64_t dim, int64_t index) { CT_TENSOR(T(a).select(dim, index)); }
ct_tensor ct_index_select(ct_tensor a, int64_t dim, ct_tensor i) { CT_TENSOR(at::index_select(T(a), dim, T(i))); }
ct_tensor ct_gather(ct_tensor a, int64_t dim, ct_tensor i) { CT_TENSOR(at::gather(T(a), dim, T(i))); }
ct_tensor ct_scatter_add(ct_tensor a, int64_t dim, ct_tensor i, ct_tensor src) {
  CT_TENSOR(at::scatter_add(T(a), dim, T(i), T(src)));
}
ct_tensor ct_index_bool(ct_tensor a, ct_tensor m) { CT_TENSOR(T(a).index({T(m)})); }
ct_tensor ct_nonzero(ct_tensor a) { CT_TENSOR(at::nonzero(T(a))); }
ct_tensor ct_index_copy(ct_tensor a, int64_t dim, ct_tensor i, ct_tensor s) { CT_TENSOR(at::index_copy(T(a), dim, T(i), T(s))); }
ct_tensor ct_cat(const ct_tensor *ts, int n, int64_t dim) { CT_TENSOR(at::cat(list(ts, n), dim)); }
ct_tensor ct_stack(const ct_tensor *ts, int n, int64_t dim) { CT_TENSOR(at::stack(list(ts, n), dim)); }

static int write_pieces(const std::vector<at::Tensor> &pieces, ct_tensor *out, int max) {
  if (static_cast<int>(pieces.size()) > max) {
    set_error(("split produced " + std::to_string(pieces.size()) + " pieces; room for " + std::to_string(max)).c_str());
    return -1;
  }
  for (size_t i = 0; i < pieces.size(); ++i) out[i] = wrap(pieces[i]);
  return static_cast<int>(pieces.size());
}
int ct_chunk(ct_tensor a, int64_t chunks, int64_t dim, ct_tensor *out, int max) {
  CT_GUARD(-1, clear(); return write_pieces(T(a).chunk(chunks, dim), out, max););
}
int ct_split(ct_tensor a, int64_t size, int64_t dim, ct_tensor *out, int max) {
  CT_GUARD(-1, clear(); return write_pieces(T(a).split(size, dim), out, max););
}
ct_tensor ct_tril(ct_tensor a, int64_t k) { CT_TENSOR(at::tril(T(a), k)); }
ct_tensor ct_triu(ct_tensor a, int64_t k) { CT_TENSOR(at::triu(T(a), k)); }
ct_tensor ct_flip(ct_tensor a, const int64_t *d, int n) { CT_TENSOR(at::flip(T(a), dims(d, n))); }
ct_tensor ct_diagonal(ct_tensor a, int64_t off, int64_t d0, int64_t d1) { CT_TENSOR(at::diagonal(T(a), off, d0, d1)); }

int ct_topk(ct_tensor a, int64_t k, int64_t dim, bool largest, bool sorted, ct_tensor *values, ct_tensor *indices) {
  CT_STATUS({
    auto [v, i] = at::topk(T(a), k, dim, largest, sorted);
    *values = wrap(v);
    *indices = wrap(i);
  });
}
int ct_sort(ct_tensor a, int64_t dim, bool descending, bool stable, ct_tensor *values, ct_tensor *indices) {
  CT_STATUS({
    auto [v, i] = at::sort(T(a), stable, dim, descending);
    *values = wrap(v);
    *indices = wrap(i);
  });
}
int ct_max_dim(ct_tensor a, int64_t dim, bool keepdim, bool is_min, ct_tensor *values, ct_tensor *indices) {
  CT_STATUS({
    auto [v, i] = is_min ? at::min(T(a), dim, keepdim) : at::max(T(a), dim, keepdim);
    *values = wrap(v);
    *indices = wrap(i);
  });
}

// Linear algebra and neural-network functions.
ct_tensor ct_matmul(ct_tensor a, ct_tensor b) { CT_TENSOR(at::matmul(T(a), T(b))); }
ct_tensor ct_linear(ct_tensor x, ct_tensor w, ct_tensor b) { CT_TENSOR(at::linear(T(x), T(w), opt(b))); }
ct_tensor ct_einsum(const char *eq, const ct_tensor *ts, int n) { CT_TENSOR(at::einsum(eq, list(ts, n))); }
ct_tensor ct_softmax(ct_tensor a, int64_t dim) { CT_TENSOR(at::softmax(T(a), dim, full_dtype(T(a)))); }
ct_tensor ct_log_softmax(ct_tensor a, int64_t dim) { CT_TENSOR(at::log_softmax(T(a), dim, full_dtype(T(a)))); }
ct_tensor ct_layer_norm(ct_tensor x, const int64_t *s, int n, ct_tensor w, ct_tensor b, double eps) {
  CT_TENSOR(at::layer_norm(T(x), dims(s, n), opt(w), opt(b), eps));
}
ct_tensor ct_group_norm(ct_tensor x, int64_t groups, ct_tensor w, ct_tensor b, double eps) {
  CT_TENSOR(at::group_norm(T(x), groups, opt(w), opt(b), eps));
}
ct_tensor ct_dropout(ct_tensor x, double p, bool train) { CT_TENSOR(at::dropout(T(x), p, train)); }
// The fused CPU flash-attention kernel has no second derivative; code that back-propagates
// through a gradient (double backward) switches attention to the math kernel on its thread.
static thread_local bool sdpa_math_only = false;
bool ct_set_sdpa_math_only(bool on) {
  bool previous = sdpa_math_only;
  sdpa_math_only = on;
  return previous;
}
ct_tensor ct_sdpa(ct_tensor q, ct_tensor k, ct_tensor v, ct_tensor mask, double dropout, bool is_causal,
                  double scale, bool has_scale) {
  std::optional<double> s = has_scale ? std::optional<double>(scale) : std::nullopt;
  if (sdpa_math_only) {
    // The math kernel adds its mask: a boolean one (true = attend) becomes 0 / −inf first, as
    // scaled_dot_product_attention does before it dispatches.
    std::optional<at::Tensor> additive = opt(mask);
    if (additive && additive->scalar_type() == at::kBool) {
      additive = at::zeros(additive->sizes(), T(q).options())
                     .masked_fill(additive->logical_not(), -std::numeric_limits<double>::infinity());
    }
    CT_TENSOR(std::get<0>(at::_scaled_dot_product_attention_math(T(q), T(k), T(v), additive, dropout, is_causal,
                                                                 std::nullopt, s)));
  }
  CT_TENSOR(at::scaled_dot_product_attention(T(q), T(k), T(v), opt(mask), dropout, is_causal, s));
}
ct_tensor ct_conv2d(ct_tensor x, ct_tensor w, ct_tensor b, const int64_t *stride, const int64_t *padding,
                    const int64_t *dilation, int64_t groups) {
  CT_TENSOR(at::conv2d(T(x), T(w), opt(b), dims(stride, 2), dims(padding, 2), dims(dilation, 2), groups));
}
ct_tensor ct_avg_pool1d(ct_tensor x, int64_t k, int64_t s, int64_t p, bool ceil_mode, bool include_pad) {
  CT_TENSOR(at::avg_pool1d(T(x), {k}, {s}, {p}, ceil_mode, include_pad));
}
ct_tensor ct_avg_pool2d(ct_tensor x, const int64_t *k, const int64_t *s, const int64_t *p, bool ceil_mode,
                        bool include_pad) {
  CT_TENSOR(at::avg_pool2d(T(x), dims(k, 2), dims(s, 2), dims(p, 2), ceil_mode, include_pad));
}
ct_tensor ct_adaptive_avg_pool1d(ct_tensor x, int64_t out) { CT_TENSOR(at::adaptive_avg_pool1d(T(x), {out})); }
ct_tensor ct_adaptive_avg_pool2d(ct_tensor x, const int64_t *out) { CT_TENSOR(at::adaptive_avg_pool2d(T(x), dims(out, 2))); }
ct_tensor ct_max_pool2d(ct_tensor x, const int64_t *k, const int64_t *s, const int64_t *p) {
  CT_TENSOR(at::max_pool2d(T(x), dims(k, 2), dims(s, 2), dims(p, 2)));
}
ct_tensor ct_interpolate2d(ct_tensor x, const int64_t *size, int mode, bool align_corners, bool antialias) {
  CT_GUARD(nullptr, {
    clear();
    auto out = dims(size, 2);
    switch (mode) {
      case 0: return wrap(at::upsample_nearest2d(T(x), out));
      case 1: return wrap(antialias ? at::_upsample_bilinear2d_aa(T(x), out, align_corners)
                                    : at::upsample_bilinear2d(T(x), out, align_corners));
      case 2: return wrap(antialias ? at::_upsample_bicubic2d_aa(T(x), out, align_corners)
                                    : at::upsample_bicubic2d(T(x), out, align_corners));
      default: TORCH_CHECK(false, "unknown interpolation mode ", mode);
    }
  });
}
ct_tensor ct_embedding(ct_tensor w, ct_tensor i) { CT_TENSOR(at::embedding(T(w), T(i))); }
ct_tensor ct_normalize(ct_tensor x, double p, int64_t dim, double eps) {
  // torch.nn.functional.normalize: x / max(||x||_p, eps)
  CT_TENSOR(T(x) / at::linalg_vector_norm(T(x), p, dim, true).clamp_min(eps).expand_as(T(x)));
}
ct_tensor ct_cosine_similarity(ct_tensor a, ct_tensor b, int64_t dim, double eps) {
  CT_TENSOR(at::cosine_similarity(T(a), T(b), dim, eps));
}
ct_tensor ct_one_hot(ct_tensor i, int64_t classes) { CT_TENSOR(at::one_hot(T(i), classes)); }

// Losses.
ct_tensor ct_cross_entropy(ct_tensor logits, ct_tensor target, int reduction, int64_t ignore_index, double smoothing) {
  CT_TENSOR(at::cross_entropy_loss(full(T(logits)), T(target).is_floating_point() ? full(T(target)) : T(target), {}, reduction,
                                    ignore_index, smoothing));
}
ct_tensor ct_kl_div(ct_tensor input, ct_tensor target, int reduction, bool log_target) {
  CT_GUARD(nullptr, {
    clear();
    if (reduction == 3) {  // batchmean, as torch.nn.functional.kl_div computes it
      auto sum = at::kl_div(full(T(input)), full(T(target)), at::Reduction::Sum, log_target);
      return wrap(T(input).dim() == 0 ? sum : sum / T(input).size(0));
    }
    return wrap(at::kl_div(full(T(input)), full(T(target)), reduction, log_target));
  });
}
ct_tensor ct_mse_loss(ct_tensor a, ct_tensor b, int reduction) { CT_TENSOR(at::mse_loss(full(T(a)), full(T(b)), reduction)); }
ct_tensor ct_smooth_l1_loss(ct_tensor a, ct_tensor b, int reduction, double beta) {
  CT_TENSOR(at::smooth_l1_loss(full(T(a)), full(T(b)), reduction, beta));
}
ct_tensor ct_bce_with_logits(ct_tensor x, ct_tensor y, int reduction) {
  CT_TENSOR(at::binary_cross_entropy_with_logits(T(x), T(y), {}, {}, reduction));
}

}  // extern "C"
