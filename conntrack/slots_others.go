//go:build !linux

package conntrack

func allocSlots(_ *Table, n int) []slot { return make([]slot, n) }
