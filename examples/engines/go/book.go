package main

import (
	"math"
	"sort"
	"strconv"
	"strings"
)

// Prices are fixed-point ticks: round(price * 10000).
const priceScale = 10000

type Side int

const (
	Buy Side = iota
	Sell
)

type Order struct {
	ID    string
	Side  Side
	Price int64 // ticks
	Qty   int64 // remaining quantity
	level *Level
}

// Level is one price level: a FIFO of resting orders (oldest first).
type Level struct {
	Price  int64
	Total  int64
	orders []*Order
}

func (l *Level) remove(o *Order) {
	for i, x := range l.orders {
		if x == o {
			l.orders = append(l.orders[:i], l.orders[i+1:]...)
			break
		}
	}
	l.Total -= o.Qty
}

// Book is one symbol's order book. Levels are kept sorted best first:
// bids by descending price, asks by ascending price.
type Book struct {
	bids, asks []*Level
	orders     map[string]*Order // resting orders by id
}

func NewBook() *Book { return &Book{orders: make(map[string]*Order)} }

type Fill struct {
	MakerID string
	Price   int64
	Qty     int64
}

// better reports whether price a has priority over price b on side s.
func better(s Side, a, b int64) bool {
	if s == Buy {
		return a > b
	}
	return a < b
}

func (b *Book) levels(s Side) *[]*Level {
	if s == Buy {
		return &b.bids
	}
	return &b.asks
}

// Match executes an incoming order against the opposite side while its limit
// allows (market orders have no limit) and returns the fills and the
// unexecuted quantity.
func (b *Book) Match(side Side, market bool, limit, qty int64) ([]Fill, int64) {
	var fills []Fill
	opp := b.levels(1 - side)
	for qty > 0 && len(*opp) > 0 {
		lvl := (*opp)[0]
		if !market && (side == Buy && lvl.Price > limit || side == Sell && lvl.Price < limit) {
			break // the best opposite price is beyond our limit
		}
		for qty > 0 && len(lvl.orders) > 0 {
			maker := lvl.orders[0]
			n := min64(qty, maker.Qty)
			fills = append(fills, Fill{maker.ID, lvl.Price, n})
			qty -= n
			maker.Qty -= n
			lvl.Total -= n
			if maker.Qty == 0 {
				lvl.orders[0] = nil
				lvl.orders = lvl.orders[1:]
				if b.orders[maker.ID] == maker {
					delete(b.orders, maker.ID)
				}
			}
		}
		if len(lvl.orders) == 0 {
			*opp = (*opp)[1:]
		}
	}
	return fills, qty
}

// Rest puts a limit remainder on the book behind the orders already at its price.
func (b *Book) Rest(id string, side Side, price, qty int64) {
	lvls := b.levels(side)
	i := sort.Search(len(*lvls), func(i int) bool { return !better(side, (*lvls)[i].Price, price) })
	if i == len(*lvls) || (*lvls)[i].Price != price {
		*lvls = append(*lvls, nil)
		copy((*lvls)[i+1:], (*lvls)[i:])
		(*lvls)[i] = &Level{Price: price}
	}
	lvl := (*lvls)[i]
	o := &Order{ID: id, Side: side, Price: price, Qty: qty, level: lvl}
	lvl.orders = append(lvl.orders, o)
	lvl.Total += qty
	if _, dup := b.orders[id]; !dup { // ids are unique; a CANCEL removes the older one
		b.orders[id] = o
	}
}

// Cancel removes a resting order; false if no such order rests on this book.
func (b *Book) Cancel(id string) bool {
	o, ok := b.orders[id]
	if !ok {
		return false
	}
	delete(b.orders, id)
	o.level.remove(o)
	if len(o.level.orders) == 0 {
		lvls := b.levels(o.Side)
		for i, l := range *lvls {
			if l == o.level {
				*lvls = append((*lvls)[:i], (*lvls)[i+1:]...)
				break
			}
		}
	}
	return true
}

// Depth is the aggregated book, best level first: [[price, qty], ...].
func (b *Book) Depth(s Side) [][2]int64 {
	out := [][2]int64{}
	for _, l := range *b.levels(s) {
		out = append(out, [2]int64{l.Price, l.Total})
	}
	return out
}

func min64(a, b int64) int64 {
	if a < b {
		return a
	}
	return b
}

// toTicks converts a price to fixed-point ticks, as the protocol compares them.
func toTicks(price float64) int64 { return int64(math.Round(price * priceScale)) }

// formatPrice prints ticks as the shortest decimal: 100.25, 100.2, 100, 99.0001.
func formatPrice(t int64) string {
	s := strconv.FormatInt(t/priceScale, 10)
	if f := t % priceScale; f != 0 {
		s += strings.TrimRight("."+strconv.FormatInt(f+priceScale, 10)[1:], "0")
	}
	return s
}
