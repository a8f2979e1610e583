// stylecam's TensorRT shim: the few C++ calls the Rust backend needs, behind
// a C ABI. It links against no TensorRT library: the Rust side dlopens the
// library and hands in the four exported entry points; everything else is a
// virtual call. One source for TensorRT 10.x, 11.x and TensorRT-RTX 1.x,
// chosen by the headers' version macros (`TRT_MAJOR_RTX` marks RTX).
#include <NvInfer.h>
#include <NvOnnxParser.h>

#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#if defined(TRT_MAJOR_RTX)
#define STC_FLAVOUR 1
#else
#define STC_FLAVOUR 0
#endif

using namespace nvinfer1;

extern "C" {
// Rust's log sink (severity as TensorRT's ILogger::Severity).
void stylecam_trt_log(int32_t severity, char const* msg);

int32_t stc_trt_header_version(void) { return NV_TENSORRT_MAJOR * 10000 + NV_TENSORRT_MINOR * 100 + NV_TENSORRT_PATCH; }
int32_t stc_trt_header_flavour(void) { return STC_FLAVOUR; }
}

namespace {

// The last error TensorRT reported on this thread: TensorRT calls its
// logger on the thread that made the failing call, so each call reads its
// own error, whichever thread made the runtime.
thread_local std::string t_last_error;

// Routes TensorRT's messages into `log` (thread-safe on the Rust side) and
// notes errors for the calling thread. TensorRT keeps the logger's address
// for as long as a builder or runtime lives, and a reload makes the
// runtime on a short-lived thread, then runs it on the inference thread:
// one logger for the whole process, never destroyed.
class Logger : public ILogger {
public:
    void log(Severity severity, char const* msg) noexcept override {
        if (severity <= Severity::kERROR && msg) {
            try {
                t_last_error = msg;
            } catch (...) {
            }
        }
        stylecam_trt_log(static_cast<int32_t>(severity), msg ? msg : "");
    }
};

// Process lifetime (made once, thread-safely; deliberately never freed).
Logger& logger() {
    static Logger* const l = new Logger();
    return *l;
}

char const* last_error_or(char const* otherwise) { return t_last_error.empty() ? otherwise : t_last_error.c_str(); }

void set_err(char* err, size_t len, char const* fmt, ...) {
    if (!err || len == 0) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

// TensorRT returns small non-null pointers (0x228) when CUDA cannot
// initialise: anything in the first page is a failure.
bool bad(void const* p) { return reinterpret_cast<uintptr_t>(p) < 4096; }

template <typename T>
struct Destroy {
    void operator()(T* p) const noexcept { delete p; }
};
template <typename T>
using Ptr = std::unique_ptr<T, Destroy<T>>;

using CreateFn = void* (*)(void* logger, int32_t version);
using CreateParserFn = void* (*)(void* network, void* logger, int version);

struct Progress : public IProgressMonitor {
    void* user;
    void (*start)(void*, char const*, char const*, int32_t);
    int32_t (*step)(void*, char const*, int32_t);
    void (*finish)(void*, char const*);
    void phaseStart(char const* name, char const* parent, int32_t steps) noexcept override {
        if (start) start(user, name, parent, steps);
    }
    bool stepComplete(char const* name, int32_t s) noexcept override { return step ? step(user, name, s) != 0 : true; }
    void phaseFinish(char const* name) noexcept override {
        if (finish) finish(user, name);
    }
};

} // namespace

extern "C" {

struct StcBuildArgs {
    void* create_builder; // createInferBuilder_INTERNAL
    void* create_parser;  // createNvOnnxParser_INTERNAL
    void const* onnx;
    size_t onnx_len;
    int32_t min_batch, opt_batch, max_batch;
    uint64_t workspace; // bytes; 0 = TensorRT's default
    int32_t compute_capability; // RTX ahead-of-time target (86 = SM 8.6); 0 = this GPU
    void* user;
    void (*phase_start)(void* user, char const* name, char const* parent, int32_t steps);
    int32_t (*step)(void* user, char const* name, int32_t step);
    void (*phase_finish)(void* user, char const* name);
    void (*write)(void* user, void const* data, size_t len);
};

// Parses the ONNX model and builds a serialized engine, handed to `write`.
// Returns 0, or 1 with a message in `err`.
int32_t stc_trt_build(StcBuildArgs const* a, char* err, size_t errlen) {
    t_last_error.clear();
    auto create = reinterpret_cast<CreateFn>(a->create_builder);
    auto create_parser = reinterpret_cast<CreateParserFn>(a->create_parser);
    void* raw = create(&logger(), NV_TENSORRT_VERSION);
    if (bad(raw)) {
        set_err(err, errlen, "createInferBuilder failed (%s)",
                last_error_or("CUDA could not initialise"));
        return 1;
    }
    Ptr<IBuilder> builder(static_cast<IBuilder*>(raw));
#if STC_FLAVOUR == 0 && NV_TENSORRT_MAJOR == 10
    // 10.x: precision comes from the model's types, as in 11.
    NetworkDefinitionCreationFlags flags = 1U << static_cast<uint32_t>(NetworkDefinitionCreationFlag::kSTRONGLY_TYPED);
#else
    NetworkDefinitionCreationFlags flags = 0; // always strongly typed
#endif
    Ptr<INetworkDefinition> network(builder->createNetworkV2(flags));
    if (bad(network.get())) {
        set_err(err, errlen, "createNetworkV2 failed: %s", last_error_or("no message from TensorRT"));
        return 1;
    }
    void* praw = create_parser(network.get(), &logger(), NV_ONNX_PARSER_VERSION);
    if (bad(praw)) {
        set_err(err, errlen, "createNvOnnxParser failed: %s", last_error_or("no message from TensorRT"));
        return 1;
    }
    Ptr<nvonnxparser::IParser> parser(static_cast<nvonnxparser::IParser*>(praw));
    if (!parser->parse(a->onnx, a->onnx_len)) {
        std::string all;
        for (int32_t i = 0; i < parser->getNbErrors(); ++i) {
            if (i) all += "; ";
            all += parser->getError(i)->desc();
        }
        set_err(err, errlen, "TensorRT's ONNX parser refused the model: %s", all.c_str());
        return 1;
    }
    Ptr<IBuilderConfig> config(builder->createBuilderConfig());
    if (a->workspace) config->setMemoryPoolLimit(MemoryPoolType::kWORKSPACE, a->workspace);
#if STC_FLAVOUR == 1
    if (a->compute_capability) {
        config->setNbComputeCapabilities(1);
        if (!config->setComputeCapability(static_cast<ComputeCapability>(a->compute_capability), 0)) {
            set_err(err, errlen, "TensorRT-RTX does not target SM %d.%d", a->compute_capability / 10,
                    a->compute_capability % 10);
            return 1;
        }
    }
#else
    if (a->compute_capability) {
        set_err(err, errlen, "ahead-of-time targets need TensorRT-RTX; TensorRT builds for the GPU it runs on");
        return 1;
    }
#endif
    // One profile over the batch dimension of every input.
    IOptimizationProfile* profile = builder->createOptimizationProfile();
    for (int32_t i = 0; i < network->getNbInputs(); ++i) {
        ITensor* t = network->getInput(i);
        Dims d = t->getDimensions();
        if (d.nbDims < 1) continue;
        Dims lo = d, opt = d, hi = d;
        if (d.d[0] < 0) {
            lo.d[0] = a->min_batch;
            opt.d[0] = a->opt_batch;
            hi.d[0] = a->max_batch;
        }
        for (int32_t k = 1; k < d.nbDims; ++k) {
            if (d.d[k] < 0) {
                set_err(err, errlen, "input %s has a dynamic dimension %d beyond the batch", t->getName(), k);
                return 1;
            }
        }
        profile->setDimensions(t->getName(), OptProfileSelector::kMIN, lo);
        profile->setDimensions(t->getName(), OptProfileSelector::kOPT, opt);
        profile->setDimensions(t->getName(), OptProfileSelector::kMAX, hi);
    }
    config->addOptimizationProfile(profile);
    Progress progress;
    progress.user = a->user;
    progress.start = a->phase_start;
    progress.step = a->step;
    progress.finish = a->phase_finish;
    config->setProgressMonitor(&progress);
    Ptr<IHostMemory> plan(builder->buildSerializedNetwork(*network, *config));
    if (bad(plan.get()) || plan->size() == 0) {
        set_err(err, errlen, "buildSerializedNetwork failed: %s",
                last_error_or("no message from TensorRT"));
        return 1;
    }
    a->write(a->user, plan->data(), plan->size());
    return 0;
}

// Creates a runtime and drops it again: whether TensorRT can run here.
// `version`: the library's own (getInferLibVersion), so a runtime-only
// library of another version is probed too; 0 = the headers' version.
int32_t stc_trt_runtime_probe(void* create_runtime, int32_t version, char* err, size_t errlen) {
    t_last_error.clear();
    void* raw = reinterpret_cast<CreateFn>(create_runtime)(&logger(), version ? version : NV_TENSORRT_VERSION);
    if (bad(raw)) {
        set_err(err, errlen, "createInferRuntime returned %p (%s)", raw,
                last_error_or("CUDA could not initialise"));
        return 1;
    }
    delete static_cast<IRuntime*>(raw);
    return 0;
}

// At most this many outputs (the person detector has two: boxes, scores).
constexpr int32_t kMaxOutputs = 8;

struct StcEngine {
    Ptr<IRuntime> runtime;
    Ptr<ICudaEngine> engine;
    Ptr<IExecutionContext> context;
    std::string input;
    std::vector<std::string> outputs; // in the engine's I/O order
};

struct StcEngineIo {
    int32_t in_nb, out_nb;
    int64_t in_dims[8];  // batch = the profile's maximum
    int64_t out_dims[8]; // the first output's
    int32_t min_batch, max_batch;
    int32_t in_type, out_type; // TensorRT DataType (out: the first output's)
    int32_t outputs;           // how many outputs (stc_trt_engine_output describes each)
};

int32_t stc_trt_engine_output(StcEngine* e, int32_t i, int64_t* dims, int32_t* nb, int32_t* type);

StcEngine* stc_trt_engine_open(void* create_runtime, void const* plan, size_t len, StcEngineIo* io, char* err,
                               size_t errlen) {
    t_last_error.clear();
    void* raw = reinterpret_cast<CreateFn>(create_runtime)(&logger(), NV_TENSORRT_VERSION);
    if (bad(raw)) {
        set_err(err, errlen, "createInferRuntime returned %p (%s)", raw,
                last_error_or("CUDA could not initialise"));
        return nullptr;
    }
    auto e = std::make_unique<StcEngine>();
    e->runtime.reset(static_cast<IRuntime*>(raw));
    e->engine.reset(e->runtime->deserializeCudaEngine(plan, len));
    if (bad(e->engine.get())) {
        e->engine.release();
        set_err(err, errlen, "deserializeCudaEngine failed: %s", last_error_or("no message from TensorRT"));
        return nullptr;
    }
    int32_t n = e->engine->getNbIOTensors();
    for (int32_t i = 0; i < n; ++i) {
        char const* name = e->engine->getIOTensorName(i);
        if (e->engine->getTensorIOMode(name) == TensorIOMode::kINPUT) {
            if (!e->input.empty()) {
                set_err(err, errlen, "the engine has more than one input");
                return nullptr;
            }
            e->input = name;
        } else {
            if (static_cast<int32_t>(e->outputs.size()) == kMaxOutputs) {
                set_err(err, errlen, "the engine has more than %d outputs", kMaxOutputs);
                return nullptr;
            }
            e->outputs.emplace_back(name);
        }
    }
    if (e->input.empty() || e->outputs.empty()) {
        set_err(err, errlen, "the engine needs one input and at least one output");
        return nullptr;
    }
    Dims lo = e->engine->getProfileShape(e->input.c_str(), 0, OptProfileSelector::kMIN);
    Dims hi = e->engine->getProfileShape(e->input.c_str(), 0, OptProfileSelector::kMAX);
    if (hi.nbDims < 1 || hi.nbDims > 8) {
        set_err(err, errlen, "unexpected input rank %d", hi.nbDims);
        return nullptr;
    }
    e->context.reset(e->engine->createExecutionContext());
    if (bad(e->context.get())) {
        e->context.release();
        set_err(err, errlen, "createExecutionContext failed: %s", last_error_or("no message from TensorRT"));
        return nullptr;
    }
    if (!e->context->setInputShape(e->input.c_str(), hi)) {
        set_err(err, errlen, "setInputShape failed: %s", last_error_or("no message from TensorRT"));
        return nullptr;
    }
    io->in_nb = hi.nbDims;
    for (int32_t k = 0; k < hi.nbDims; ++k) io->in_dims[k] = hi.d[k];
    io->min_batch = static_cast<int32_t>(lo.d[0]);
    io->max_batch = static_cast<int32_t>(hi.d[0]);
    io->in_type = static_cast<int32_t>(e->engine->getTensorDataType(e->input.c_str()));
    io->outputs = static_cast<int32_t>(e->outputs.size());
    if (stc_trt_engine_output(e.get(), 0, io->out_dims, &io->out_nb, &io->out_type) != 0) {
        set_err(err, errlen, "the first output's shape is unknown: %s", last_error_or("no message from TensorRT"));
        return nullptr;
    }
    return e.release();
}

// Output `i`'s shape at the profile's largest batch (`dims`: 8 entries)
// and TensorRT DataType. Returns 0, or 1 for an output it does not have or
// a rank above 8.
int32_t stc_trt_engine_output(StcEngine* e, int32_t i, int64_t* dims, int32_t* nb, int32_t* type) {
    if (i < 0 || i >= static_cast<int32_t>(e->outputs.size())) return 1;
    char const* name = e->outputs[static_cast<size_t>(i)].c_str();
    Dims out = e->context->getTensorShape(name);
    if (out.nbDims < 0 || out.nbDims > 8) return 1;
    *nb = out.nbDims;
    for (int32_t k = 0; k < out.nbDims; ++k) dims[k] = out.d[k];
    *type = static_cast<int32_t>(e->engine->getTensorDataType(name));
    return 0;
}

// Enqueues one batch on `stream`: `input` and the `n` entries of `outputs`
// (one per output, in stc_trt_engine_output's order) are device pointers.
int32_t stc_trt_engine_run_outputs(StcEngine* e, int32_t batch, void* input, void* const* outputs, int32_t n,
                                   void* stream, char* err, size_t errlen) {
    t_last_error.clear();
    if (n != static_cast<int32_t>(e->outputs.size())) {
        set_err(err, errlen, "the engine has %d outputs; %d buffers were given", static_cast<int32_t>(e->outputs.size()), n);
        return 1;
    }
    Dims d = e->engine->getProfileShape(e->input.c_str(), 0, OptProfileSelector::kMAX);
    d.d[0] = batch;
    bool bound = e->context->setInputShape(e->input.c_str(), d) && e->context->setTensorAddress(e->input.c_str(), input);
    for (int32_t i = 0; bound && i < n; ++i) {
        bound = e->context->setTensorAddress(e->outputs[static_cast<size_t>(i)].c_str(), outputs[i]);
    }
    if (!bound) {
        set_err(err, errlen, "binding the batch of %d failed: %s", batch, last_error_or("no message from TensorRT"));
        return 1;
    }
    if (!e->context->enqueueV3(reinterpret_cast<cudaStream_t>(stream))) {
        set_err(err, errlen, "enqueueV3 failed: %s", last_error_or("no message from TensorRT"));
        return 1;
    }
    return 0;
}

// stc_trt_engine_run_outputs for an engine with one output.
int32_t stc_trt_engine_run(StcEngine* e, int32_t batch, void* input, void* output, void* stream, char* err,
                           size_t errlen) {
    void* const outputs[1] = {output};
    return stc_trt_engine_run_outputs(e, batch, input, outputs, 1, stream, err, errlen);
}

void stc_trt_engine_close(StcEngine* e) { delete e; }

} // extern "C"
