package config

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"
)

// The converters of udr.yaml's leaves: each takes the field path and the
// node (nil when the key is absent), reports what is wrong with it through
// errorf, and returns the value, or the default when the node is absent or
// faulty, with ok false after a problem.

// absent reports whether a key was left out or given no value (null).
func absent(n ast.Node) bool { return n == nil || n.Type() == ast.NullType }

// got describes a node that has the wrong type: `string "80"`, `list`.
func got(n ast.Node) string {
	switch n.Type() {
	case ast.MappingType, ast.SequenceType:
		return kindName(n.Type())
	case ast.StringType:
		return fmt.Sprintf("string %q", n.GetToken().Value)
	}
	return kindName(n.Type()) + " " + n.GetToken().Value
}

// kindName names a YAML node type as this package's messages do.
func kindName(t ast.NodeType) string {
	if t == ast.SequenceType {
		return "list"
	}
	return t.YAMLName()
}

// str returns the string at path, or def when it is absent.
func (d *configDecoder) str(path string, n ast.Node, def string) (string, bool) {
	if absent(n) {
		return def, true
	}
	s, ok := n.(*ast.StringNode)
	if !ok {
		d.errorf(path, "want a string, got %s", got(n))
		return def, false
	}
	return s.Value, true
}

// boolean returns the boolean at path, or false when it is absent.
func (d *configDecoder) boolean(path string, n ast.Node) (bool, bool) {
	if absent(n) {
		return false, true
	}
	b, ok := n.(*ast.BoolNode)
	if !ok {
		d.errorf(path, "want true or false, got %s", got(n))
		return false, false
	}
	return b.Value, true
}

// integer returns the integer at path, in min..max, or def when absent.
func (d *configDecoder) integer(path string, n ast.Node, min, max, def int64) (int64, bool) {
	if absent(n) {
		return def, true
	}
	in, ok := n.(*ast.IntegerNode)
	if !ok {
		d.errorf(path, "want an integer, got %s", got(n))
		return def, false
	}
	var v int64
	switch x := in.Value.(type) {
	case int64:
		v = x
	case uint64:
		v = max + 1 // beyond every range udr has
		if x <= 1<<62 {
			v = int64(x)
		}
	default:
		d.errorf(path, "want an integer, got %s", got(n))
		return def, false
	}
	if v < min || v > max {
		d.errorf(path, "%s out of range %d..%d", in.GetToken().Value, min, max)
		return def, false
	}
	return v, true
}

// duration returns the duration at path (Go syntax: "10s", "1m30s"), at
// least min, or def when absent. whole asks for a whole number of seconds.
func (d *configDecoder) duration(path string, n ast.Node, min, max, def time.Duration, whole bool) (time.Duration, bool) {
	if absent(n) {
		return def, true
	}
	s, ok := n.(*ast.StringNode)
	if !ok {
		if n.Type() == ast.IntegerType || n.Type() == ast.FloatType {
			d.errorf(path, "%s has no unit, want a duration such as %ss", n.GetToken().Value, n.GetToken().Value)
		} else {
			d.errorf(path, "want a duration such as 10s, got %s", got(n))
		}
		return def, false
	}
	v, err := time.ParseDuration(s.Value)
	switch {
	case err != nil:
		d.errorf(path, "%q is not a duration, want e.g. 10s or 1m30s", s.Value)
	case whole && v%time.Second != 0:
		d.errorf(path, "%s is not a whole number of seconds", s.Value)
	case (v < min || v > max) && whole:
		d.errorf(path, "%s out of range %ds..%ds", s.Value, min/time.Second, max/time.Second)
	case v < min || v > max:
		d.errorf(path, "%s out of range %s..%s", s.Value, shortDuration(min), shortDuration(max))
	default:
		return v, true
	}
	return def, false
}

// addr returns the IP address at path; it is required.
func (d *configDecoder) addr(path string, n ast.Node) (netip.Addr, bool) {
	s, ok := d.str(path, n, "")
	if !ok {
		return netip.Addr{}, false
	}
	if s == "" {
		d.errorf(path, "required")
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		d.errorf(path, "%q is not an IP address", s)
		return netip.Addr{}, false
	}
	return a, true
}

// oneOf returns the string at path, which must be one of want, or def when
// it is absent.
func (d *configDecoder) oneOf(path string, n ast.Node, def string, want ...string) (string, bool) {
	s, ok := d.str(path, n, def)
	if !ok {
		return def, false
	}
	for _, w := range want {
		if s == w {
			return s, true
		}
	}
	d.errorf(path, "%q unknown, want %s", s, orList(want))
	return def, false
}

// stringList returns the list of strings at path.
func (d *configDecoder) stringList(path string, n ast.Node) ([]string, bool) {
	if absent(n) {
		return nil, true
	}
	seq, ok := n.(*ast.SequenceNode)
	if !ok {
		d.errorf(path, "want a list, got %s", got(n))
		return nil, false
	}
	list := make([]string, 0, len(seq.Values))
	ok = true
	for i, v := range seq.Values {
		s, good := d.str(fmt.Sprintf("%s[%d]", path, i), v, "")
		list = append(list, s)
		ok = ok && good
	}
	return list, ok
}

// orList writes "a, b or c", with "" for an empty string.
func orList(list []string) string {
	s := make([]string, len(list))
	for i, w := range list {
		s[i] = w
		if w == "" {
			s[i] = `""`
		}
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// shortDuration writes d without zero minutes and seconds: 1h, not 1h0m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
