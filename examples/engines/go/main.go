// Command go_engine is a QuantCraft example contestant engine in Go
// (protocol version 1.1, docs/protocol.md): net/http for /health and
// /orderbook, gorilla/websocket for the order stream on /ws/orders.
//
//	go_engine --port PORT    (else $QC_PORT, else 8080), listens on 127.0.0.1
//
// One goroutine per WebSocket connection reads an order, matches it against
// the shared books (one mutex) and writes its report before reading the
// next, so reports go out in arrival order.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/gorilla/websocket"
)

const maxMessage = 16 << 20

var upgrader = websocket.Upgrader{
	ReadBufferSize:  64 << 10,
	WriteBufferSize: 64 << 10,
	CheckOrigin:     func(*http.Request) bool { return true },
}

func main() {
	port := flag.Int("port", 0, "TCP port on 127.0.0.1 (default $QC_PORT, else 8080)")
	flag.Parse()
	if *port == 0 {
		*port, _ = strconv.Atoi(os.Getenv("QC_PORT"))
	}
	if *port == 0 {
		*port = 8080
	}
	log.SetFlags(0)

	ex := NewExchange()
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("/orderbook", func(w http.ResponseWriter, r *http.Request) {
		handleOrderbook(ex, w, r)
	})
	mux.HandleFunc("/ws/orders", func(w http.ResponseWriter, r *http.Request) {
		handleOrders(ex, w, r)
	})

	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", *port))
	if err != nil {
		log.Fatalf("go_engine: %v", err)
	}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	go func() { <-stop; os.Exit(0) }()

	log.Printf("go_engine: listening on %s", ln.Addr())
	log.Fatal(http.Serve(ln, mux))
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

// handleOrderbook answers {"symbol": S, "bids": [[price, qty], ...], "asks": [...]}.
func handleOrderbook(ex *Exchange, w http.ResponseWriter, r *http.Request) {
	symbol, ok := r.URL.Query()["symbol"]
	if !ok {
		http.Error(w, "missing symbol", http.StatusBadRequest)
		return
	}
	bids, asks := ex.Depth(symbol[0])
	writeJSON(w, map[string]any{"symbol": symbol[0], "bids": levelsJSON(bids), "asks": levelsJSON(asks)})
}

func levelsJSON(levels [][2]int64) [][]any {
	out := [][]any{}
	for _, l := range levels {
		out = append(out, []any{json.Number(formatPrice(l[0])), l[1]})
	}
	return out
}

// handleOrders serves one WebSocket connection: one report per order, in order.
func handleOrders(ex *Exchange, w http.ResponseWriter, r *http.Request) {
	conn, err := upgrader.Upgrade(w, r, nil) // answers the failed handshake itself
	if err != nil {
		return
	}
	defer conn.Close()
	conn.SetReadLimit(maxMessage)
	for {
		_, frame, err := conn.ReadMessage()
		if err != nil {
			return // closed by the judge, or a protocol error
		}
		report, err := json.Marshal(ex.HandleFrame(frame))
		if err != nil {
			log.Printf("go_engine: %v", err)
			return
		}
		if err := conn.WriteMessage(websocket.TextMessage, report); err != nil {
			return
		}
	}
}
