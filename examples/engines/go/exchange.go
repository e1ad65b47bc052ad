package main

import (
	"encoding/json"
	"math"
	"sync"
)

const (
	maxIDLen     = 32
	maxSymbolLen = 32
	maxQuantity  = 1e15
)

// OrderMsg is one order frame from the judge (unknown fields are ignored).
type OrderMsg struct {
	OrderID  string   `json:"order_id"`
	Symbol   string   `json:"symbol"`
	Type     string   `json:"type"`
	Side     string   `json:"side"`
	Price    *float64 `json:"price"`
	Quantity *float64 `json:"quantity"`
	TargetID string   `json:"target_order_id"`
}

// Report is the engine's answer to one order.
type Report struct {
	OrderID string       `json:"order_id"`
	Status  string       `json:"status"`
	Fills   []ReportFill `json:"fills"`
}

type ReportFill struct {
	MatchOrderID string      `json:"match_order_id"`
	Price        json.Number `json:"price"`
	Quantity     int64       `json:"quantity"`
}

const (
	Filled    = "FILLED"
	Resting   = "RESTING"
	Cancelled = "CANCELLED"
	Rejected  = "REJECTED"
)

// Exchange holds every symbol's book. One mutex guards them all: each
// symbol is only ever traded on one connection, so contention is low.
type Exchange struct {
	mu    sync.Mutex
	books map[string]*Book
}

func NewExchange() *Exchange { return &Exchange{books: make(map[string]*Book)} }

// HandleFrame decodes one order frame, applies it and returns its report.
// A frame that is not a valid order is REJECTED without touching any book.
func (e *Exchange) HandleFrame(frame []byte) Report {
	var m OrderMsg
	err := json.Unmarshal(frame, &m) // on a type error the other fields are still filled
	rep := Report{OrderID: m.OrderID, Status: Rejected, Fills: []ReportFill{}}
	if err != nil || !validOrder(&m) {
		return rep
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	book := e.books[m.Symbol]
	if m.Type == "CANCEL" {
		if book != nil && book.Cancel(m.TargetID) {
			rep.Status = Cancelled
		}
		return rep
	}
	if book == nil {
		book = NewBook()
		e.books[m.Symbol] = book
	}
	side := Buy
	if m.Side == "SELL" {
		side = Sell
	}
	var limit int64
	if m.Type == "LIMIT" {
		limit = toTicks(*m.Price)
	}
	qty := int64(*m.Quantity)
	fills, left := book.Match(side, m.Type == "MARKET", limit, qty)
	for _, f := range fills {
		rep.Fills = append(rep.Fills, ReportFill{f.MakerID, json.Number(formatPrice(f.Price)), f.Qty})
	}
	switch {
	case left == 0:
		rep.Status = Filled
	case m.Type == "LIMIT":
		book.Rest(m.OrderID, side, limit, left)
		rep.Status = Resting
	default:
		rep.Status = Cancelled // a MARKET remainder is discarded
	}
	return rep
}

func validOrder(m *OrderMsg) bool {
	if m.OrderID == "" || len(m.OrderID) > maxIDLen || m.Symbol == "" || len(m.Symbol) > maxSymbolLen {
		return false
	}
	switch m.Type {
	case "CANCEL":
		return m.TargetID != "" && len(m.TargetID) <= maxIDLen
	case "LIMIT":
		if m.Price == nil || toTicks(*m.Price) <= 0 {
			return false
		}
	case "MARKET":
	default:
		return false
	}
	if m.Side != "BUY" && m.Side != "SELL" {
		return false
	}
	q := m.Quantity
	return q != nil && *q > 0 && *q <= maxQuantity && *q == math.Trunc(*q)
}

// Depth returns a symbol's aggregated levels (empty for an unknown symbol).
func (e *Exchange) Depth(symbol string) (bids, asks [][2]int64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	book := e.books[symbol]
	if book == nil {
		return [][2]int64{}, [][2]int64{}
	}
	return book.Depth(Buy), book.Depth(Sell)
}
