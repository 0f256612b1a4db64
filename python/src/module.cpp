// reformer._core: the engine for Python (nanobind). A thin layer over the C++ API: models (load,
// save, construct from a config), logits and loss of token ids as numpy arrays, incremental decoding
// (decode states, prefill, decoding steps) and the engine's sampler and byte generation. The Python
// package (python/reformer/__init__.py) builds the user-facing API on these. Heavy calls release
// the GIL; `threads` arguments set OpenMP threads for that call only.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>
#include <omp.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "reformer/generate.h"
#include "reformer/sampling.h"
#include "reformer/checkpoint.h"
#include "reformer/config.h"
#include "reformer/decode.h"
#include "reformer/error.h"
#include "reformer/model.h"
#include "reformer/memory_estimate.h"

namespace nb = nanobind;
using namespace reformer;

namespace {

using IdArray = nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using MaskArray = nb::ndarray<const uint8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using FloatArray = nb::ndarray<nb::numpy, float>;

// OpenMP threads for one call (0 = leave the process setting).
class Threads {
 public:
  explicit Threads(int n) : saved_(omp_get_max_threads()), set_(n > 0) {
    if (set_) omp_set_num_threads(n);
  }
  ~Threads() {
    if (set_) omp_set_num_threads(saved_);
  }

 private:
  int saved_;
  bool set_;
};

// A numpy float32 array owning a copy of `data`.
FloatArray to_numpy(std::vector<float>&& data, std::vector<size_t> shape) {
  auto* owned = new std::vector<float>(std::move(data));
  nb::capsule free(owned, [](void* p) noexcept { delete static_cast<std::vector<float>*>(p); });
  return FloatArray(owned->data(), shape.size(), shape.data(), free);
}

Batch make_batch(const IdArray& ids, const std::optional<MaskArray>& mask) {
  Batch b;
  b.ids = ids.data();
  b.batch = static_cast<int64_t>(ids.shape(0));
  b.length = static_cast<int64_t>(ids.shape(1));
  if (mask) {
    REFORMER_CHECK(mask->shape(0) == ids.shape(0) && mask->shape(1) == ids.shape(1), "attention_mask of shape (",
                   mask->shape(0), ", ", mask->shape(1), ") does not match input_ids (", ids.shape(0), ", ",
                   ids.shape(1), ")");
    b.attention_mask = mask->data();
  }
  return b;
}

void check_ids(const ReformerModel& m, const int32_t* ids, size_t n) {
  for (size_t i = 0; i < n; ++i)
    REFORMER_CHECK(ids[i] >= 0 && ids[i] < m.config().vocab_size, "token id ", ids[i], " at flat index ", i,
                   " is outside the vocabulary [0, ", m.config().vocab_size, ")");
}

StepOptions eval_options(uint64_t seed) {
  StepOptions o;
  o.training = false;
  o.seed = seed;
  return o;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "reformer engine bindings (use the `reformer` package)";
  nb::register_exception_translator([](const std::exception_ptr& p, void*) {
    try {
      std::rethrow_exception(p);
    } catch (const Error& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    }
  });

  m.def("config_defaults", [] { return ReformerConfig().to_json().dump(); }, "the default config as JSON");
  m.def("config_validate", [](const std::string& json) {
    return ReformerConfig::from_json(nlohmann::json::parse(json)).to_json().dump();
  }, "validates a config given as JSON; returns it with every field, as JSON");

  nb::class_<DecodeState>(m, "DecodeState")
      .def_prop_ro("batch", &DecodeState::batch)
      .def_prop_ro("capacity", &DecodeState::capacity)
      .def_prop_ro("bytes", &DecodeState::bytes)
      .def("length", &DecodeState::length, nb::arg("seq") = 0)
      .def("clear", &DecodeState::clear, nb::arg("seq") = 0);

  nb::class_<ReformerModel>(m, "Model")
      .def("__init__", [](ReformerModel* self, const std::string& config_json, uint64_t seed) {
        new (self) ReformerModel(ReformerConfig::from_json(nlohmann::json::parse(config_json)), seed);
      }, nb::arg("config_json"), nb::arg("seed") = 0)
      .def_static("load", [](const std::string& dir) { return load_model(dir).release(); }, nb::arg("dir"),
                  nb::rv_policy::take_ownership)
      .def("save", [](ReformerModel& self, const std::string& dir) { save_model(dir, self); }, nb::arg("dir"))
      .def("config_json", [](const ReformerModel& self) { return self.config().to_json().dump(); })
      .def_prop_ro("num_parameters", &ReformerModel::num_parameters)
      .def("set_num_hashes", &ReformerModel::set_num_hashes)
      .def("logits", [](ReformerModel& self, const IdArray& ids, const std::optional<MaskArray>& mask, uint64_t seed,
                        int threads) {
        check_ids(self, ids.data(), ids.size());
        const Batch b = make_batch(ids, mask);
        std::vector<float> out;
        {
          nb::gil_scoped_release release;
          const Threads t(threads);
          Tensor logits;
          self.forward_logits(logits, b, eval_options(seed));
          out.assign(logits.data(), logits.data() + logits.numel());
        }
        return to_numpy(std::move(out), {ids.shape(0), ids.shape(1), static_cast<size_t>(self.config().vocab_size)});
      }, nb::arg("ids"), nb::arg("attention_mask") = nb::none(), nb::arg("seed") = 0, nb::arg("threads") = 0)
      .def("hidden_states", [](ReformerModel& self, const IdArray& ids, const std::optional<MaskArray>& mask,
                               uint64_t seed, int threads) {
        // Hugging Face's output_hidden_states: j = 0 the embedding output, j = i + 1 the X2 stream
        // after layer i, each (B, L, hidden), taken from the model's dump hook.
        check_ids(self, ids.data(), ids.size());
        const Batch b = make_batch(ids, mask);
        const int64_t layers = self.config().num_layers();
        std::vector<std::vector<float>> states(static_cast<size_t>(layers + 1));
        {
          nb::gil_scoped_release release;
          const Threads t(threads);
          self.set_dump_hook([&](const std::string& name, const float* data, const Shape& shape) {
            int64_t j = -1;
            if (name == "embeddings") j = 0;
            for (int64_t i = 0; i < layers && j < 0; ++i)
              if (name == "layer." + std::to_string(i) + ".y2") j = i + 1;
            if (j >= 0) states[j].assign(data, data + shape_numel(shape));
          });
          Tensor logits;
          try {
            self.forward_logits(logits, b, eval_options(seed));
          } catch (...) {
            self.set_dump_hook(nullptr);
            throw;
          }
          self.set_dump_hook(nullptr);
        }
        std::vector<FloatArray> out;
        for (auto& s : states)
          out.push_back(to_numpy(std::move(s), {ids.shape(0), ids.shape(1), static_cast<size_t>(self.config().hidden_size)}));
        return out;
      }, nb::arg("ids"), nb::arg("attention_mask") = nb::none(), nb::arg("seed") = 0, nb::arg("threads") = 0)
      .def("loss", [](ReformerModel& self, const IdArray& ids, const std::optional<IdArray>& labels,
                      const std::optional<MaskArray>& mask, uint64_t seed, int threads) {
        check_ids(self, ids.data(), ids.size());
        Batch b = make_batch(ids, mask);
        if (labels) {
          REFORMER_CHECK(labels->shape(0) == ids.shape(0) && labels->shape(1) == ids.shape(1),
                         "labels must have the shape of input_ids");
          b.labels = labels->data();
        }
        nb::gil_scoped_release release;
        const Threads t(threads);
        const LossStats s = self.evaluate(b, eval_options(seed));
        return std::vector<double>{s.mean(), s.count, s.correct};
      }, nb::arg("ids"), nb::arg("labels") = nb::none(), nb::arg("attention_mask") = nb::none(), nb::arg("seed") = 0,
         nb::arg("threads") = 0)
      .def("training_memory", [](const ReformerModel& self, int64_t seq_len, int64_t batch, const std::string& optimizer) {
        const MemoryEstimate e = estimate_training_memory(self.config(), batch, seq_len, optimizer, omp_get_max_threads());
        return std::vector<int64_t>{e.parameters, e.gradients, e.optimizer_state, e.activations, e.workspace};
      }, nb::arg("seq_len"), nb::arg("batch") = 1, nb::arg("optimizer") = "adam")
      .def("make_decode_state", &ReformerModel::make_decode_state, nb::arg("batch") = 1, nb::arg("capacity") = 0,
           nb::arg("seed") = 0)
      .def("prefill", [](ReformerModel& self, DecodeState& state, int64_t seq, const std::vector<int32_t>& ids,
                         int threads) {
        check_ids(self, ids.data(), ids.size());
        std::vector<float> out(static_cast<size_t>(self.config().vocab_size));
        {
          nb::gil_scoped_release release;
          const Threads t(threads);
          self.prefill(state, seq, ids.data(), static_cast<int64_t>(ids.size()), out.data());
        }
        return to_numpy(std::move(out), {out.size()});
      }, nb::arg("state"), nb::arg("seq"), nb::arg("ids"), nb::arg("threads") = 0)
      .def("decode_step", [](ReformerModel& self, DecodeState& state, const std::vector<int64_t>& seqs,
                             const std::vector<int32_t>& ids) {
        REFORMER_CHECK(seqs.size() == ids.size(), "decode_step: ", seqs.size(), " sequences but ", ids.size(), " ids");
        check_ids(self, ids.data(), ids.size());
        const size_t V = static_cast<size_t>(self.config().vocab_size);
        std::vector<float> out(ids.size() * V);
        {
          nb::gil_scoped_release release;
          self.decode_step(state, seqs.data(), ids.data(), static_cast<int64_t>(ids.size()), out.data());
        }
        return to_numpy(std::move(out), {ids.size(), V});
      }, nb::arg("state"), nb::arg("seqs"), nb::arg("ids"));

  nb::class_<Sampler>(m, "Sampler")
      .def("__init__", [](Sampler* self, double temperature, int64_t top_k, double top_p, uint64_t seed) {
        new (self) Sampler(SamplingOptions{temperature, top_k, top_p}, seed);
      }, nb::arg("temperature") = 1.0, nb::arg("top_k") = 0, nb::arg("top_p") = 1.0, nb::arg("seed") = 0)
      .def("sample", [](Sampler& self, nb::ndarray<const float, nb::ndim<1>, nb::c_contig, nb::device::cpu> logits,
                        int64_t first_id, uint64_t index) {
        return self.sample(logits.data(), static_cast<int64_t>(logits.shape(0)), first_id, index);
      }, nb::arg("logits"), nb::arg("first_id"), nb::arg("index"));

  m.def("generate_bytes", [](ReformerModel& model, const std::vector<nb::bytes>& prompts, int64_t max_new_bytes,
                             double temperature, int64_t top_k, double top_p, uint64_t seed, int64_t max_context,
                             const std::vector<std::string>& stop, int threads) {
    std::vector<std::string> p;
    for (const nb::bytes& b : prompts) p.emplace_back(b.c_str(), b.size());
    GenerateOptions o;
    o.bytes = max_new_bytes;
    o.sampling = SamplingOptions{temperature, top_k, top_p};
    o.seed = seed;
    o.max_context = max_context;
    o.stop = stop;
    GenerateResult r;
    {
      nb::gil_scoped_release release;
      const Threads t(threads);
      r = generate_bytes(model, p, o);
    }
    std::vector<nb::bytes> out;
    for (const std::string& s : r.text) out.emplace_back(s.data(), s.size());
    return nb::make_tuple(out, r.finish);
  }, nb::arg("model"), nb::arg("prompts"), nb::arg("max_new_bytes"), nb::arg("temperature"), nb::arg("top_k"),
     nb::arg("top_p"), nb::arg("seed"), nb::arg("max_context"), nb::arg("stop"), nb::arg("threads"));
}
