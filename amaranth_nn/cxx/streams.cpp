// The Verilator testbench of amaranth_nn.simulate.run_streams (backend "verilator").
//
// It does, cycle for cycle, what the Python simulator's two testbenches do: a source that
// drives s_valid/s_payload (idle for in_gaps[j] cycles before beat j) and a sink that drives
// m_ready (not ready for out_gaps[n] cycles before beat n), both sampling the design at each
// rising clock edge; after the last output beat, 8 more cycles in which no beat may be valid.
// The stall pattern comes from Python (amaranth_nn.simulate.stall_pattern), so that both
// backends run the very same one.
//
// stdin (little-endian): u64 in_count, out_count, idle_limit; u32 words[in_count * IN_CHUNKS];
// u32 in_gaps[in_count]; u32 out_gaps[out_count].
// stdout: u64 status (0 done, 1 an extra output beat, 2 no transfer for idle_limit cycles),
// u64 cycles simulated, f64 seconds, u32 outputs[out_count * OUT_CHUNKS],
// i64 in_cycles[in_count], i64 out_cycles[out_count].
// argv[1], optional: the waveform file (VCD or FST, as the model was verilated).

#include "common.h"  // Bench; bench.h: IN_CHUNKS, OUT_CHUNKS

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <vector>

template <typename T>
static inline void put(T& port, const uint32_t* w, int n) {
    uint64_t value = w[0];
    if (n > 1) value |= static_cast<uint64_t>(w[1]) << 32;
    port = static_cast<T>(value);
}

template <std::size_t N>
static inline void put(VlWide<N>& port, const uint32_t* w, int) {
    for (std::size_t i = 0; i < N; i++) port[i] = w[i];
}

template <typename T>
static inline void get(const T& port, uint32_t* w, int n) {
    uint64_t value = port;
    w[0] = static_cast<uint32_t>(value);
    if (n > 1) w[1] = static_cast<uint32_t>(value >> 32);
}

template <std::size_t N>
static inline void get(const VlWide<N>& port, uint32_t* w, int) {
    for (std::size_t i = 0; i < N; i++) w[i] = port[i];
}

template <typename T>
static bool read_all(std::vector<T>& items) {
    return std::fread(items.data(), sizeof(T), items.size(), stdin) == items.size();
}

template <typename T>
static void write_all(const std::vector<T>& items) {
    std::fwrite(items.data(), sizeof(T), items.size(), stdout);
}

int main(int argc, char** argv) {
    std::vector<uint64_t> header(3);
    if (!read_all(header)) return 3;
    const uint64_t in_count = header[0], out_count = header[1], idle_limit = header[2];
    std::vector<uint32_t> words(in_count * IN_CHUNKS), in_gaps(in_count), out_gaps(out_count);
    if (!read_all(words) || !read_all(in_gaps) || !read_all(out_gaps)) return 3;
    std::vector<uint32_t> outputs(out_count * OUT_CHUNKS);
    std::vector<int64_t> in_cycles(in_count), out_cycles(out_count);

    std::unique_ptr<Bench> bench{new Bench{argc, argv}};
    Vtop* const top = bench->top.get();

    uint64_t in_index = 0, out_index = 0;
    uint64_t in_wait = in_count ? in_gaps[0] : 0, out_wait = out_count ? out_gaps[0] : 0;
    int64_t last_out = -1;  // the cycle of the last output beat
    uint64_t idle = 0, status = 0, cycle = 0;
    const auto start = std::chrono::steady_clock::now();
    for (;; cycle++) {
        const bool source_valid = in_index < in_count && in_wait == 0;
        if (source_valid) put(top->s_payload, &words[in_index * IN_CHUNKS], IN_CHUNKS);
        top->s_valid = source_valid;
        const bool sink_ready = out_index < out_count && out_wait == 0;
        top->m_ready = sink_ready;
        bench->low(cycle);
        // The values at the rising edge.
        const bool taken = source_valid && top->s_ready;
        const bool given = sink_ready && top->m_valid;
        if (given) get(top->m_payload, &outputs[out_index * OUT_CHUNKS], OUT_CHUNKS);
        const bool extra =
            out_index == out_count && static_cast<int64_t>(cycle) > last_out && top->m_valid;
        bench->rise(cycle);
        if (taken) {
            in_cycles[in_index++] = static_cast<int64_t>(cycle);
            if (in_index < in_count) in_wait = in_gaps[in_index];
        } else if (in_wait) {
            in_wait--;
        }
        if (given) {
            last_out = static_cast<int64_t>(cycle);
            out_cycles[out_index++] = last_out;
            if (out_index < out_count) out_wait = out_gaps[out_index];
        } else if (out_wait) {
            out_wait--;
        }
        if (extra) {
            status = 1;
            break;
        }
        idle = taken || given ? 0 : idle + 1;
        if (out_index == out_count && in_index == in_count &&
            static_cast<int64_t>(cycle) >= last_out + 8)
            break;
        if (idle > idle_limit) {
            status = 2;
            break;
        }
    }
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    bench.reset();  // closes the waveform
    std::vector<uint64_t> counts{status, cycle + 1};
    write_all(counts);
    std::fwrite(&seconds, sizeof(seconds), 1, stdout);
    write_all(outputs);
    write_all(in_cycles);
    write_all(out_cycles);
    return 0;
}
