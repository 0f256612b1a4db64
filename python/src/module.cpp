// reformer._core: the engine for Python (nanobind). A thin layer over the C++ API: models (load,
// save, construct from a config), logits and loss of token ids as numpy arrays, incremental decoding
// (decode states, prefill, decoding steps) and the engine's sampler and byte generation. The Python
// package (python/reformer/__init__.py) builds the user-facing API on these. Heavy calls release
// the GIL; `threads` arguments set OpenMP threads for that call only.
#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/set.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/vector.h>

#include <cstring>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "reformer/generate.h"
#include "reformer/sampling.h"
#include "reformer/attention_kinds.h"
#include "reformer/checkpoint.h"
#include "reformer/config.h"
#include "reformer/decode.h"
#include "reformer/error.h"
#include "reformer/model.h"
#include "reformer/evaluate.h"
#include "reformer/memory_estimate.h"
#include "reformer/threads.h"
#include "reformer/tokenizer.h"
#include "reformer/train.h"

namespace nb = nanobind;
using namespace reformer;

namespace {

using IdArray = nb::ndarray<const int32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using MaskArray = nb::ndarray<const uint8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
using FloatArray = nb::ndarray<nb::numpy, float>;

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

// A Python exception raised inside a callback that the engine called: the error stays set as
// Python's error indicator while this unwinds the engine, and is raised again once back in Python.
struct PythonCallbackFailed {};

// Runs fn (Python code) from engine code that runs without the GIL. A KeyboardInterrupt (Ctrl-C,
// which Python raises wherever its code runs) is not an error here: it sets `interrupted`, and the
// run stops at its next poll of stop_requested, after saving.
template <class Fn>
void call_python(bool& interrupted, Fn&& fn) {
  nb::gil_scoped_acquire acquire;
  try {
    fn();
  } catch (nb::python_error& e) {
    if (e.matches(PyExc_KeyboardInterrupt)) {
      interrupted = true;
      return;
    }
    e.restore();
    throw PythonCallbackFailed{};
  }
}

// train(): the CLI's training run. Options arrive as the TrainArgs JSON with the keys given
// explicitly; callbacks get each metrics record as a dict. Ctrl-C (KeyboardInterrupt) saves a
// checkpoint and stops, as in the CLI; then KeyboardInterrupt is raised.
nb::dict train_run(const std::string& out_dir, const std::string& args_json, const std::vector<std::string>& given,
                   const std::optional<std::string>& config_json, bool resume, int64_t max_memory, int threads,
                   bool verbose, nb::object on_record) {
  TrainRequest r;
  r.out_dir = out_dir;
  r.resume = resume;
  r.given = std::set<std::string>(given.begin(), given.end());
  try {
    r.args = nlohmann::json::parse(args_json).get<TrainArgs>();
  } catch (const nlohmann::json::exception& e) {
    fail("training options: ", e.what(), " (", args_json, ")");
  }
  std::optional<ReformerConfig> config;
  if (config_json) config = ReformerConfig::from_json(nlohmann::json::parse(*config_json));
  r.model = [config](int64_t, const ReformerConfig*) { return config; };
  r.max_memory = max_memory;
  r.threads = threads;
  r.progress = verbose ? stdout : nullptr;
  bool interrupted_by_user = false;
  TrainCallbacks cb;
  nb::object json_loads = nb::module_::import_("json").attr("loads");
  if (!on_record.is_none())
    cb.on_record = [&](const nlohmann::json& record) {
      call_python(interrupted_by_user, [&] { on_record(json_loads(record.dump())); });
    };
  cb.stop_requested = [&] {
    call_python(interrupted_by_user, [&] {
      if (PyErr_CheckSignals() != 0) throw nb::python_error();  // runs the signal handlers
    });
    return interrupted_by_user;
  };
  TrainSummary summary;
  try {
    nb::gil_scoped_release release;
    summary = train(r, cb);
  } catch (const PythonCallbackFailed&) {
    throw nb::python_error();
  }
  if (interrupted_by_user) {
    if (verbose) std::printf("stopped by KeyboardInterrupt after saving; continue with resume=True\n");
    std::fflush(stdout);
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw nb::python_error();
  }
  nb::dict out;
  out["step"] = summary.step;
  out["interrupted"] = summary.interrupted;
  out["already_finished"] = summary.already_finished;
  out["args"] = json_loads(nlohmann::json(summary.args).dump());
  out["config"] = json_loads(summary.config.to_json().dump());
  return out;
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "reformer engine bindings (use the `reformer` package)";
  // reformer.Error: every engine error, with the engine's message; a ValueError (bad input).
  nb::exception<Error>(m, "Error", PyExc_ValueError);

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
      .def_prop_ro("max_length", [](const ReformerModel& self) { return self.config().max_length(); })
      .def("set_num_hashes", &ReformerModel::set_num_hashes)
      .def("set_rotations", [](ReformerModel& self, int layer,
                               std::optional<nb::ndarray<const float, nb::ndim<4>, nb::c_contig, nb::device::cpu>> rot) {
        const ReformerConfig& c = self.config();
        REFORMER_CHECK(layer >= 0 && layer < c.num_layers() && attention_kind(c.attn_layers[layer]).hashed, "set_rotations: layer ",
                       layer, " is not an LSH layer of the model (attn_layers ", nlohmann::json(c.attn_layers).dump(), ")");
        if (!rot) return self.set_rotations(layer, nullptr);
        REFORMER_CHECK(!c.num_buckets.empty(), "set_rotations: the config's num_buckets is unset; set it, so that the "
                       "rotations' shape is known");
        int64_t cols = 0;
        for (int64_t f : c.num_buckets) cols += f / 2;
        const std::vector<int64_t> want{c.num_attention_heads, c.attention_head_size, self.num_hashes(), cols};
        for (size_t i = 0; i < 4; ++i)
          REFORMER_CHECK(static_cast<int64_t>(rot->shape(i)) == want[i], "set_rotations: layer ", layer, " needs rotations of shape "
                         "(heads, head size, num_hashes, num_buckets / 2) = (", want[0], ", ", want[1], ", ", want[2], ", ", want[3],
                         "), got dimension ", i, " = ", rot->shape(i));
        self.set_rotations(layer, rot->data());
      }, nb::arg("layer"), nb::arg("rotations").none())
      .def("logits", [](ReformerModel& self, const IdArray& ids, const std::optional<MaskArray>& mask, uint64_t seed,
                        int threads) {
        check_ids(self, ids.data(), ids.size());
        const Batch b = make_batch(ids, mask);
        std::vector<float> out;
        {
          nb::gil_scoped_release release;
          const ScopedThreads t(threads);
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
          const ScopedThreads t(threads);
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
        const ScopedThreads t(threads);
        const LossStats s = self.evaluate(b, eval_options(seed));
        return std::vector<double>{s.mean(), s.count, s.correct};
      }, nb::arg("ids"), nb::arg("labels") = nb::none(), nb::arg("attention_mask") = nb::none(), nb::arg("seed") = 0,
         nb::arg("threads") = 0)
      .def("memory_plan", [](const ReformerModel& self, int64_t seq_len, int64_t batch, bool training,
                             const std::string& optimizer, bool logits, int threads) {
        if (threads > 0) check_threads(threads);
        const int n = threads > 0 ? threads : max_threads();
        const MemoryEstimate e = training ? estimate_training_memory(self.config(), batch, seq_len, optimizer, n)
                                          : estimate_forward_memory(self.config(), batch, seq_len, n, logits);
        nb::dict d;
        for (auto [name, bytes] : {std::pair{"parameters", e.parameters}, {"gradients", e.gradients},
                                   {"optimizer_state", e.optimizer_state}, {"activations", e.activations},
                                   {"workspace", e.workspace}, {"outputs", e.outputs}, {"total", e.total()}})
          d[name] = bytes;
        return d;
      }, nb::arg("seq_len"), nb::arg("batch"), nb::arg("training"), nb::arg("optimizer"), nb::arg("logits"),
         nb::arg("threads"))
      .def("make_decode_state", &ReformerModel::make_decode_state, nb::arg("batch") = 1, nb::arg("capacity") = 0,
           nb::arg("seed") = 0)
      .def("prefill", [](ReformerModel& self, DecodeState& state, int64_t seq, const std::vector<int32_t>& ids,
                         int threads) {
        check_ids(self, ids.data(), ids.size());
        std::vector<float> out(static_cast<size_t>(self.config().vocab_size));
        {
          nb::gil_scoped_release release;
          const ScopedThreads t(threads);
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

  m.def("train", &train_run, nb::arg("out_dir"), nb::arg("args_json"), nb::arg("given"), nb::arg("config_json").none(),
        nb::arg("resume"), nb::arg("max_memory"), nb::arg("threads"), nb::arg("verbose"), nb::arg("on_record").none());
  m.def("train_defaults", [] { return nlohmann::json(TrainArgs()).dump(); }, "the training options' defaults as JSON");

  nb::class_<EvalRequest>(m, "EvalRequest")  // reformer/evaluate.h; Model.evaluate fills it by keyword
      .def(nb::init<>())
      .def_rw("data", &EvalRequest::data)
      .def_rw("file", &EvalRequest::file)
      .def_rw("split", &EvalRequest::split)
      .def_rw("task", &EvalRequest::task)
      .def_rw("tokenizer", &EvalRequest::tokenizer)
      .def_rw("model_dir", &EvalRequest::model_dir)
      .def_rw("seq_len", &EvalRequest::seq_len)
      .def_rw("batch", &EvalRequest::batch)
      .def_rw("max_windows", &EvalRequest::max_windows)
      .def_rw("num_hashes", &EvalRequest::num_hashes)
      .def_rw("seed", &EvalRequest::seed)
      .def_rw("incremental", &EvalRequest::incremental)
      .def_rw("threads", &EvalRequest::threads);

  m.def("evaluate", [](ReformerModel& model, const EvalRequest& r) {
    EvalResult e;
    {
      nb::gil_scoped_release release;
      e = evaluate(model, r);
    }
    nb::dict out;
    out["loss"] = e.loss;
    out["bits_per_byte"] = e.bits_per_byte;
    out["accuracy"] = e.accuracy;
    out["tokens"] = e.stats.count;
    out["length"] = e.length;
    out["source"] = e.source;
    return out;
  });

  // The address of the ids buffer the engine reads: lets the tests check that a contiguous int32
  // array reaches the engine without a copy.
  m.def("_ids_address", [](const IdArray& ids) { return reinterpret_cast<uintptr_t>(ids.data()); });

  m.def("generate_bytes", [](ReformerModel& model, const std::vector<nb::bytes>& prompts, int64_t max_new_bytes,
                             double temperature, int64_t top_k, double top_p, uint64_t seed, int64_t max_context,
                             const std::vector<std::string>& stop, int threads, const std::string& model_dir,
                             const std::string& tokenizer_file) {
    // As `reformer generate`: the model directory's spiece.model (or tokenizer_file) turns prompts
    // into tokens and tokens into text; without one, bytes.
    const std::unique_ptr<Tokenizer> tokenizer =
        model_dir.empty() && tokenizer_file.empty() ? nullptr : tokenizer_for(model_dir, tokenizer_file);
    std::vector<std::string> p;
    for (const nb::bytes& b : prompts) p.emplace_back(b.c_str(), b.size());
    GenerateOptions o;
    o.bytes = max_new_bytes;
    o.sampling = SamplingOptions{temperature, top_k, top_p};
    o.seed = seed;
    o.max_context = max_context;
    o.stop = stop;
    o.tokenizer = tokenizer.get();
    GenerateResult r;
    {
      nb::gil_scoped_release release;
      const ScopedThreads t(threads);
      r = generate_bytes(model, p, o);
    }
    std::vector<nb::bytes> out;
    for (const std::string& s : r.text) out.emplace_back(s.data(), s.size());
    return nb::make_tuple(out, r.finish);
  }, nb::arg("model"), nb::arg("prompts"), nb::arg("max_new_bytes"), nb::arg("temperature"), nb::arg("top_k"),
     nb::arg("top_p"), nb::arg("seed"), nb::arg("max_context"), nb::arg("stop"), nb::arg("threads"),
     nb::arg("model_dir") = "", nb::arg("tokenizer") = "");
}
