// What the testbenches share: the verilated model of the design ("top"), its context, and the
// optional waveform (argv[1]; VCD or FST as the model was verilated, BENCH_TRACE 1 or 2).

#include "bench.h"  // the testbench's configuration, BENCH_TRACE
#include "Vtop.h"
#include "verilated.h"
#if BENCH_TRACE == 1
#include "verilated_vcd_c.h"
typedef VerilatedVcdC Trace;
#elif BENCH_TRACE == 2
#include "verilated_fst_c.h"
typedef VerilatedFstC Trace;
#endif

#include <cstdint>
#include <memory>

struct Bench {
    std::unique_ptr<VerilatedContext> context{new VerilatedContext};
    std::unique_ptr<Vtop> top;
#if BENCH_TRACE
    Trace trace;
    bool tracing = false;
#endif

    Bench(int argc, char** argv) {
#if BENCH_TRACE
        context->traceEverOn(true);
#endif
        top.reset(new Vtop{context.get()});
#if BENCH_TRACE
        if (argc > 1) {
            top->trace(&trace, 99);
            trace.open(argv[1]);
            tracing = true;
        }
#else
        (void)argc;
        (void)argv;
#endif
        top->rst = 0;
        top->clk = 0;
    }

    // The low half of clock cycle `cycle`: the inputs set for it have settled.
    void low(uint64_t cycle) {
        top->clk = 0;
        top->eval();
#if BENCH_TRACE
        if (tracing) trace.dump(10 * cycle);
#endif
    }

    // The rising edge that ends clock cycle `cycle`.
    void rise(uint64_t cycle) {
        top->clk = 1;
        top->eval();
#if BENCH_TRACE
        if (tracing) trace.dump(10 * cycle + 5);
#endif
    }

    ~Bench() {
#if BENCH_TRACE
        if (tracing) trace.close();
#endif
        top->final();
    }
};
