// The Verilator testbench of amaranth_nn.link.SimulatedLink (backend "verilator"): the board
// harness behind its UART pins, driven by commands on stdin, one per line.
//
//   w HEX         queue bytes for the RX pin (8N1)
//   e HEX         queue one byte with a low stop bit (a framing error at the board)
//   r CYCLE WANT  run until CYCLE clock cycles have passed since the start, or until WANT
//                 bytes have come from the TX pin since the last reply (WANT 0: no early stop)
//   q             quit
//
// Each "r" is answered with one line: the cycles so far, the framing errors seen on TX, the
// rising edges of heartbeat, busy, error and activity so far, and the new bytes in hex ("-"
// for none). The RX pin takes a new character at bit boundaries (every DIVISOR cycles from the
// start), back to back while bytes are queued; TX characters are sampled in the middle of each
// bit, DIVISOR / 2 cycles after the falling edge of the start bit, as the Python simulator's
// testbench does.

#include "common.h"  // Bench; bench.h: DIVISOR

#include <cstdint>
#include <deque>
#include <iostream>
#include <sstream>
#include <string>
#include <utility>

static const char HEX[] = "0123456789abcdef";

int main(int argc, char** argv) {
    std::ios::sync_with_stdio(false);
    Bench bench{argc, argv};
    Vtop* const top = bench.top.get();
    top->rx = 1;

    std::deque<std::pair<int, int>> to_board;  // (byte, stop bit)
    int rx_bits[10] = {0};
    int rx_slot = -1;  // bit being sent, -1 when idle
    int tx_state = 0, tx_bit = 0, tx_value = 0;
    uint64_t tx_sample = 0;
    int tx_previous = 1;
    uint64_t framing_errors = 0;
    uint64_t edges[4] = {0, 0, 0, 0};
    int leds[4] = {0, 0, 0, 0};
    uint64_t cycle = 0;
    std::string received;

    std::string line;
    while (std::getline(std::cin, line)) {
        std::istringstream command(line);
        std::string op;
        command >> op;
        if (op == "w" || op == "e") {
            std::string hex;
            command >> hex;
            for (std::size_t i = 0; i + 1 < hex.size(); i += 2)
                to_board.emplace_back(std::stoi(hex.substr(i, 2), nullptr, 16), op == "w");
        } else if (op == "r") {
            uint64_t until = 0, want = 0;
            command >> until >> want;
            while (cycle < until && (want == 0 || received.size() < 2 * want)) {
                if (cycle % DIVISOR == 0) {  // a bit boundary of the RX pin
                    if (rx_slot < 0 && !to_board.empty()) {
                        const auto item = to_board.front();
                        to_board.pop_front();
                        rx_bits[0] = 0;
                        for (int i = 0; i < 8; i++) rx_bits[1 + i] = (item.first >> i) & 1;
                        rx_bits[9] = item.second;
                        rx_slot = 0;
                    }
                    if (rx_slot >= 0) {
                        top->rx = rx_bits[rx_slot];
                        rx_slot = rx_slot == 9 ? -1 : rx_slot + 1;
                    } else {
                        top->rx = 1;
                    }
                }
                bench.low(cycle);
                bench.rise(cycle);
                const int tx = top->tx;
                if (tx_state == 0) {
                    if (tx_previous && !tx) {
                        tx_state = 1;
                        tx_sample = cycle + DIVISOR / 2;
                    }
                } else if (cycle == tx_sample) {
                    if (tx_state == 1) {  // the start bit
                        tx_state = tx ? 0 : 2;
                        tx_bit = 0;
                        tx_value = 0;
                    } else if (tx_state == 2) {
                        tx_value |= tx << tx_bit;
                        if (++tx_bit == 8) tx_state = 3;
                    } else {  // the stop bit
                        if (tx) {
                            received += HEX[tx_value >> 4];
                            received += HEX[tx_value & 15];
                        } else {
                            framing_errors++;
                        }
                        tx_state = 0;
                    }
                    tx_sample += DIVISOR;
                }
                tx_previous = tx;
                const int now[4] = {top->heartbeat, top->busy, top->error, top->activity};
                for (int i = 0; i < 4; i++) {
                    edges[i] += now[i] && !leds[i];
                    leds[i] = now[i];
                }
                cycle++;
            }
            std::cout << cycle << ' ' << framing_errors << ' ' << edges[0] << ' ' << edges[1]
                      << ' ' << edges[2] << ' ' << edges[3] << ' '
                      << (received.empty() ? "-" : received) << std::endl;
            received.clear();
        } else if (op == "q") {
            break;
        }
    }
    return 0;
}
