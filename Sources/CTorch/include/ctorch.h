// C interface over LibTorch for Swift. Every function body catches every C++ exception.
//
// Error protocol (one rule for the whole shim):
//   * a function that returns a handle returns NULL on failure;
//   * a function that returns `int` returns 0 on success and -1 on failure;
//   * on failure the message is left in a thread-local slot read by ct_last_error().
// A handle returned by the shim is owned by the caller and released with ct_free.
// Some functions legitimately return NULL without an error (ct_grad of a tensor that has
// no gradient): callers tell the two apart with ct_last_error().
#ifndef CTORCH_H
#define CTORCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ct_tensor_s *ct_tensor;
typedef struct ct_generator_s *ct_generator;

// Errors and bookkeeping.
const char *ct_last_error(void);  // NULL when the last call on this thread succeeded
void ct_clear_error(void);
int64_t ct_live_tensors(void);     // handles created and not yet freed (leak checks)
// Handles created minus handles freed on the calling thread: a leak check that other
// threads' work (tests running in parallel) cannot disturb.
int64_t ct_thread_live_delta(void);
void ct_free(ct_tensor t);
ct_tensor ct_shallow_clone(ct_tensor t);  // a second handle on the same storage and autograd node

// Runtime.
void ct_set_num_threads(int n);
int ct_get_num_threads(void);
int ct_manual_seed(uint64_t seed);
// Autocast for a device type (0 CPU, 1 CUDA): enabled, and the lower-precision dtype (a dtype
// code; used only when enabling). Disabling clears autocast's cache of cast weights.
int ct_autocast_set(int device_type, bool enabled, int dtype);
bool ct_autocast_enabled(int device_type);
// Deterministic algorithms (an op without a deterministic kernel then fails, naming itself),
// cuDNN deterministic and not benchmarking; sets CUBLAS_WORKSPACE_CONFIG=:4096:8 unless set.
int ct_set_deterministic(bool enabled);
bool ct_deterministic(void);
// Loads libtorch_cuda.so from LibTorch's lib folder so CUDA kernels register (once per process;
// later calls give the first answer); returns 1 if loaded, 0 if not available (the loader's
// reason is left in ct_last_error, for messages).
int ct_try_load_cuda(void);
// LibTorch's operator profiler on CPU activities (benchmarks): start (recording input shapes or
// not), then stop writing one line per event to `path`: name (followed by the input shapes when
// recorded), thread id, start ns, duration ns (tab-separated).
int ct_profiler_start(bool shapes);
int ct_profiler_stop(const char *path);
bool ct_cuda_is_available(void);
int ct_cuda_device_count(void);
int ct_cuda_synchronize(int device);
const char *ct_torch_version(void);

// Dtype codes follow c10::ScalarType: 0 u8, 1 i8, 2 i16, 3 i32, 4 i64, 5 f16, 6 f32,
// 7 f64, 11 bool, 15 bf16. Device: type 0 = CPU, 1 = CUDA; index -1 = current.

// Generators (seeded, explicit).
ct_generator ct_generator_new(uint64_t seed);
void ct_generator_free(ct_generator g);
ct_tensor ct_generator_get_state(ct_generator g);              // NULL g = default CPU generator
int ct_generator_set_state(ct_generator g, ct_tensor state);

// Creation. `g` may be NULL (default generator).
ct_tensor ct_empty(const int64_t *shape, int ndim, int dtype, int device_type, int device_index);
ct_tensor ct_zeros(const int64_t *shape, int ndim, int dtype, int device_type, int device_index);
ct_tensor ct_ones(const int64_t *shape, int ndim, int dtype, int device_type, int device_index);
ct_tensor ct_full(const int64_t *shape, int ndim, double value, int dtype, int device_type, int device_index);
ct_tensor ct_randn(const int64_t *shape, int ndim, int dtype, int device_type, int device_index, ct_generator g);
ct_tensor ct_rand(const int64_t *shape, int ndim, int dtype, int device_type, int device_index, ct_generator g);
ct_tensor ct_randint(int64_t low, int64_t high, const int64_t *shape, int ndim, int device_type, int device_index, ct_generator g);
ct_tensor ct_randperm(int64_t n, int device_type, int device_index, ct_generator g);
ct_tensor ct_arange(double start, double end, double step, int dtype, int device_type, int device_index);
ct_tensor ct_linspace(double start, double end, int64_t steps, int dtype, int device_type, int device_index);
ct_tensor ct_eye(int64_t n, int dtype, int device_type, int device_index);
// Copies `nbytes` from `data` (host memory) into a new CPU tensor.
ct_tensor ct_from_data(const void *data, size_t nbytes, const int64_t *shape, int ndim, int dtype);
// Wraps `data` without copying; `release(context)` runs when the storage dies.
ct_tensor ct_from_blob(void *data, const int64_t *shape, int ndim, int dtype, void *context, void (*release)(void *));

// Properties.
int ct_dim(ct_tensor t);
int ct_sizes(ct_tensor t, int64_t *out);  // out must hold ct_dim entries
int ct_strides(ct_tensor t, int64_t *out);
int64_t ct_numel(ct_tensor t);
int ct_dtype(ct_tensor t);
int ct_device(ct_tensor t, int *type, int *index);
bool ct_requires_grad(ct_tensor t);
bool ct_is_contiguous(ct_tensor t);
bool ct_is_defined(ct_tensor t);
int ct_item_double(ct_tensor t, double *out);
int ct_item_int64(ct_tensor t, int64_t *out);
// Copies the tensor's elements (any device, converted to contiguous) into `out`, which
// must hold nbytes = numel * element size.
int ct_copy_to_host(ct_tensor t, void *out, size_t nbytes);
void *ct_data_ptr(ct_tensor t);
size_t ct_element_size(ct_tensor t);

// Conversion and copying.
ct_tensor ct_to(ct_tensor t, int dtype, int device_type, int device_index, bool copy);
ct_tensor ct_contiguous(ct_tensor t);
ct_tensor ct_clone(ct_tensor t);
ct_tensor ct_detach(ct_tensor t);
int ct_set_requires_grad(ct_tensor t, bool value);
// Replaces t's data with src's (dtype/device may differ), keeping t's identity and autograd
// leaf status: how a module moves its parameters without replacing the objects.
int ct_set_data(ct_tensor t, ct_tensor src);

// Elementwise ops selected by code (see the enums in Torch/Ops.swift, kept in step with
// the switch statements in ctorch_ops.cpp).
ct_tensor ct_unary(int op, ct_tensor a);
ct_tensor ct_binary(int op, ct_tensor a, ct_tensor b);
ct_tensor ct_binary_scalar(int op, ct_tensor a, double s);
ct_tensor ct_scalar_binary(int op, double s, ct_tensor a);  // s op a
int ct_inplace_binary(int op, ct_tensor a, ct_tensor b, double alpha);
int ct_inplace_scalar(int op, ct_tensor a, double s);
ct_tensor ct_clamp(ct_tensor a, double lo, double hi, bool has_lo, bool has_hi);
ct_tensor ct_where(ct_tensor cond, ct_tensor a, ct_tensor b);
ct_tensor ct_masked_fill(ct_tensor a, ct_tensor mask, double value);
ct_tensor ct_lerp(ct_tensor a, ct_tensor b, double weight);
// Reductions: ndims == 0 reduces over every dimension.
ct_tensor ct_reduce(int op, ct_tensor a, const int64_t *dims, int ndims, bool keepdim);
ct_tensor ct_norm(ct_tensor a, double p, const int64_t *dims, int ndims, bool keepdim);
ct_tensor ct_var(ct_tensor a, const int64_t *dims, int ndims, int64_t correction, bool keepdim);
ct_tensor ct_arg_reduce(int op, ct_tensor a, int64_t dim, bool keepdim);  // 0 argmax, 1 argmin
ct_tensor ct_cumsum(ct_tensor a, int64_t dim);

// Shape.
ct_tensor ct_reshape(ct_tensor a, const int64_t *shape, int ndim);
ct_tensor ct_view(ct_tensor a, const int64_t *shape, int ndim);
ct_tensor ct_permute(ct_tensor a, const int64_t *dims, int ndim);
ct_tensor ct_transpose(ct_tensor a, int64_t d0, int64_t d1);
ct_tensor ct_expand(ct_tensor a, const int64_t *shape, int ndim);
ct_tensor ct_repeat(ct_tensor a, const int64_t *repeats, int ndim);
ct_tensor ct_squeeze(ct_tensor a, int64_t dim);
ct_tensor ct_unsqueeze(ct_tensor a, int64_t dim);
ct_tensor ct_flatten(ct_tensor a, int64_t start, int64_t end);
ct_tensor ct_narrow(ct_tensor a, int64_t dim, int64_t start, int64_t length);
ct_tensor ct_slice(ct_tensor a, int64_t dim, int64_t start, int64_t end, int64_t step);
ct_tensor ct_select(ct_tensor a, int64_t dim, int64_t index);
ct_tensor ct_index_select(ct_tensor a, int64_t dim, ct_tensor index);
ct_tensor ct_gather(ct_tensor a, int64_t dim, ct_tensor index);
ct_tensor ct_scatter_add(ct_tensor a, int64_t dim, ct_tensor index, ct_tensor src);
ct_tensor ct_index_bool(ct_tensor a, ct_tensor mask);  // a[mask]
// Indices of a's nonzero elements [N, a.dim()] (int64).
ct_tensor ct_nonzero(ct_tensor a);
// a with the slices at `index` along `dim` replaced by src's (out of place).
ct_tensor ct_index_copy(ct_tensor a, int64_t dim, ct_tensor index, ct_tensor src);
ct_tensor ct_cat(const ct_tensor *ts, int n, int64_t dim);
ct_tensor ct_stack(const ct_tensor *ts, int n, int64_t dim);
// Writes up to `max` handles into out; returns how many pieces (or -1).
int ct_chunk(ct_tensor a, int64_t chunks, int64_t dim, ct_tensor *out, int max);
int ct_split(ct_tensor a, int64_t size, int64_t dim, ct_tensor *out, int max);
ct_tensor ct_tril(ct_tensor a, int64_t diagonal);
ct_tensor ct_triu(ct_tensor a, int64_t diagonal);
ct_tensor ct_flip(ct_tensor a, const int64_t *dims, int ndims);
ct_tensor ct_diagonal(ct_tensor a, int64_t offset, int64_t d0, int64_t d1);
int ct_topk(ct_tensor a, int64_t k, int64_t dim, bool largest, bool sorted, ct_tensor *values, ct_tensor *indices);
int ct_sort(ct_tensor a, int64_t dim, bool descending, bool stable, ct_tensor *values, ct_tensor *indices);
int ct_max_dim(ct_tensor a, int64_t dim, bool keepdim, bool is_min, ct_tensor *values, ct_tensor *indices);

// Linear algebra and neural-network functions.
ct_tensor ct_matmul(ct_tensor a, ct_tensor b);
ct_tensor ct_linear(ct_tensor x, ct_tensor w, ct_tensor b_or_null);
ct_tensor ct_einsum(const char *equation, const ct_tensor *ts, int n);
ct_tensor ct_softmax(ct_tensor a, int64_t dim);
ct_tensor ct_log_softmax(ct_tensor a, int64_t dim);
ct_tensor ct_layer_norm(ct_tensor x, const int64_t *shape, int ndim, ct_tensor w_or_null, ct_tensor b_or_null, double eps);
ct_tensor ct_group_norm(ct_tensor x, int64_t groups, ct_tensor w_or_null, ct_tensor b_or_null, double eps);
ct_tensor ct_dropout(ct_tensor x, double p, bool train);
/// Attention through the math kernel (twice differentiable) on this thread; returns the previous setting.
bool ct_set_sdpa_math_only(bool on);
ct_tensor ct_sdpa(ct_tensor q, ct_tensor k, ct_tensor v, ct_tensor mask_or_null, double dropout, bool is_causal, double scale, bool has_scale);
ct_tensor ct_conv2d(ct_tensor x, ct_tensor w, ct_tensor b_or_null, const int64_t *stride, const int64_t *padding, const int64_t *dilation, int64_t groups);
ct_tensor ct_avg_pool1d(ct_tensor x, int64_t kernel, int64_t stride, int64_t padding, bool ceil_mode, bool count_include_pad);
ct_tensor ct_avg_pool2d(ct_tensor x, const int64_t *kernel, const int64_t *stride, const int64_t *padding, bool ceil_mode, bool count_include_pad);
ct_tensor ct_adaptive_avg_pool1d(ct_tensor x, int64_t out);
ct_tensor ct_adaptive_avg_pool2d(ct_tensor x, const int64_t *out);
ct_tensor ct_max_pool2d(ct_tensor x, const int64_t *kernel, const int64_t *stride, const int64_t *padding);
// mode: 0 nearest, 1 bilinear, 2 bicubic; `size` has 2 entries.
ct_tensor ct_interpolate2d(ct_tensor x, const int64_t *size, int mode, bool align_corners, bool antialias);
ct_tensor ct_embedding(ct_tensor weight, ct_tensor indices);
ct_tensor ct_normalize(ct_tensor x, double p, int64_t dim, double eps);
ct_tensor ct_cosine_similarity(ct_tensor a, ct_tensor b, int64_t dim, double eps);
ct_tensor ct_one_hot(ct_tensor indices, int64_t classes);

// Losses. reduction: 0 none, 1 mean, 2 sum (at::Reduction order); kl_div adds 3 batchmean.
ct_tensor ct_cross_entropy(ct_tensor logits, ct_tensor target, int reduction, int64_t ignore_index, double label_smoothing);
ct_tensor ct_kl_div(ct_tensor input, ct_tensor target, int reduction, bool log_target);
ct_tensor ct_mse_loss(ct_tensor a, ct_tensor b, int reduction);
ct_tensor ct_smooth_l1_loss(ct_tensor a, ct_tensor b, int reduction, double beta);
ct_tensor ct_bce_with_logits(ct_tensor logits, ct_tensor target, int reduction);

// Autograd.
bool ct_set_grad_enabled(bool enabled);  // returns the previous state (thread-local)
bool ct_is_grad_enabled(void);
int ct_backward(ct_tensor t, ct_tensor grad_or_null, bool retain_graph);
ct_tensor ct_grad(ct_tensor t);  // NULL without error when t has no gradient
int ct_zero_grad(ct_tensor t);   // sets the gradient to undefined (set_to_none)
int ct_set_grad(ct_tensor t, ct_tensor grad);
// Gradients of sum(outputs) w.r.t. inputs; writes n_inputs handles (NULL for an unused input).
int ct_autograd_grad(const ct_tensor *outputs, int n_outputs, const ct_tensor *inputs, int n_inputs,
                     bool retain_graph, bool create_graph, ct_tensor *out);

// Optimizer kernels (run without grad, in place on parameters and state).
// AdamW with decoupled weight decay, PyTorch's single-tensor algorithm.
int ct_adamw_step(const ct_tensor *params, const ct_tensor *grads, const ct_tensor *exp_avg,
                  const ct_tensor *exp_avg_sq, int n, int64_t step, double lr, double beta1,
                  double beta2, double eps, double weight_decay);
int ct_sgd_step(const ct_tensor *params, const ct_tensor *grads, const ct_tensor *momentum_or_null,
                int n, double lr, double momentum, double dampening, double weight_decay,
                bool nesterov, bool first_step);
// Scales gradients so their global p-norm is at most max_norm; writes the norm before clipping.
int ct_clip_grad_norm(const ct_tensor *params, int n, double max_norm, double norm_type, double *total_norm);

// Data-parallel collectives (c10d; Gloo, with CUDA tensors staged through host memory).
typedef struct ct_process_group_s *ct_process_group;
// Joins a group of `world` processes: rank 0 serves a TCPStore on host:port, the others
// connect. Every collective fails after `timeout_seconds` rather than waiting forever.
ct_process_group ct_pg_new(const char *host, int port, int rank, int world, double timeout_seconds);
void ct_pg_free(ct_process_group pg);
// SIGKILL to the calling process when its parent dies (Linux): launched workers die with
// their launcher. 0 on success.
int ct_die_with_parent(void);
// Σ over ranks, in place, in flattened buckets of at most bucket_bytes launched together.
int ct_pg_allreduce_sum(ct_process_group pg, const ct_tensor *tensors, int n, int64_t bucket_bytes);
int ct_pg_broadcast(ct_process_group pg, const ct_tensor *tensors, int n, int root);
int ct_pg_barrier(ct_process_group pg);
// Differentiable: every rank's rows concatenated along dim 0 (backward: the all-reduced
// gradient's own rows); Σ over ranks (backward: the all-reduced gradient).
ct_tensor ct_pg_all_gather(ct_process_group pg, ct_tensor x);
ct_tensor ct_pg_all_reduce_sum(ct_process_group pg, ct_tensor x);

#ifdef __cplusplus
}
#endif
#endif
