package config

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/lexer"
	yamlparser "github.com/goccy/go-yaml/parser"
	"github.com/goccy/go-yaml/token"
)

// This file is the syntax half of udr.yaml: goccy/go-yaml parses the file
// and decodes it strictly into the *Doc structs below, whose leaves are the
// YAML nodes themselves. The leaves are then converted one by one by the
// helpers of configDecoder, so that every bad value is reported, each with
// its line and field path, and not only the first one.

// fileDoc is udr.yaml as written. Every leaf is the YAML node (nil when the
// key is absent); only the shape (mappings, lists, known keys) is checked
// by the YAML decoder.
type fileDoc struct {
	Interface        ast.Node     `yaml:"interface"`
	VIPMAC           ast.Node     `yaml:"vip_mac"`
	ControlSocket    ast.Node     `yaml:"control_socket"`
	StateFile        ast.Node     `yaml:"state_file"`
	MetricsAddress   ast.Node     `yaml:"metrics_address"`
	IO               ast.Node     `yaml:"io"`
	Workers          ast.Node     `yaml:"workers"`
	AnnounceInterval ast.Node     `yaml:"announce_interval"`
	Capacity         ast.Node     `yaml:"capacity"`
	SloppyTCP        ast.Node     `yaml:"sloppy_tcp"`
	Standby          ast.Node     `yaml:"standby"`
	ConnReuseMode    ast.Node     `yaml:"conn_reuse_mode"`
	ExpireNodestConn ast.Node     `yaml:"expire_nodest_conn"`
	ExpireQuiescent  ast.Node     `yaml:"expire_quiescent_template"`
	DropEntry        ast.Node     `yaml:"drop_entry"`
	SecureTCP        ast.Node     `yaml:"secure_tcp"`
	Timeouts         *timeoutsDoc `yaml:"timeouts"`
	Rules            ast.Node     `yaml:"rules"`
	Services         []serviceDoc `yaml:"services"`
	Sync             *syncDoc     `yaml:"sync"`
	BGP              *bgpDoc      `yaml:"bgp"`
}

type timeoutsDoc struct {
	TCP    ast.Node `yaml:"tcp"`
	TCPFin ast.Node `yaml:"tcp_fin"`
	UDP    ast.Node `yaml:"udp"`
}

type serviceDoc struct {
	Protocol    ast.Node        `yaml:"protocol"`
	Address     ast.Node        `yaml:"address"`
	Port        ast.Node        `yaml:"port"`
	Scheduler   ast.Node        `yaml:"scheduler"`
	Flags       ast.Node        `yaml:"flags"`
	Persistence *persistenceDoc `yaml:"persistence"`
	OnePacket   ast.Node        `yaml:"one_packet"`
	HealthCheck *healthDoc      `yaml:"health_check"`
	SorryServer *sorryDoc       `yaml:"sorry_server"`
	Quorum      ast.Node        `yaml:"quorum"`
	Hysteresis  ast.Node        `yaml:"hysteresis"`
	Servers     []serverDoc     `yaml:"servers"`
}

type sorryDoc struct {
	Address ast.Node `yaml:"address"`
	Port    ast.Node `yaml:"port"`
	Inhibit ast.Node `yaml:"inhibit"`
}

type persistenceDoc struct {
	Timeout ast.Node `yaml:"timeout"`
	Netmask ast.Node `yaml:"netmask"`
}

type serverDoc struct {
	Address        ast.Node   `yaml:"address"`
	Port           ast.Node   `yaml:"port"`
	Weight         ast.Node   `yaml:"weight"`
	UpperThreshold ast.Node   `yaml:"upper_threshold"`
	LowerThreshold ast.Node   `yaml:"lower_threshold"`
	HealthCheck    *healthDoc `yaml:"health_check"`
}

// configDecoder converts the leaves of a fileDoc and collects every problem
// as "name:line: path: message". Lines come from the field paths, which
// index the parsed file.
type configDecoder struct {
	name  string
	lines map[string]int          // field path → line of its key (or item)
	keys  map[*token.Token]string // key token → field path
	vals  map[*token.Token]string // value token → field path
	errs  []lineError
	seen  map[string]bool // messages reported already (inherited health checks repeat them)
}

// lineError is a problem and the line of udr.yaml it is about, by which
// problems are sorted.
type lineError struct {
	line int
	err  error
}

// report records err about line.
func (d *configDecoder) report(line int, err error) {
	d.errs = append(d.errs, lineError{line, err})
}

// err returns every problem reported, joined, in line order.
func (d *configDecoder) err() error {
	slices.SortStableFunc(d.errs, func(a, b lineError) int { return a.line - b.line })
	errs := make([]error, len(d.errs))
	for i, e := range d.errs {
		errs[i] = e.err
	}
	return errors.Join(errs...)
}

// decodeDoc parses data and decodes it strictly into a fileDoc. A syntax or
// shape error (an unknown key, a list where a mapping belongs) stops the
// decoding; it is returned alone.
func decodeDoc(data []byte, name string) (*fileDoc, *configDecoder, error) {
	d := &configDecoder{
		name:  name,
		lines: make(map[string]int),
		keys:  make(map[*token.Token]string),
		vals:  make(map[*token.Token]string),
		seen:  make(map[string]bool),
	}
	if len(data) > MaxFileSize {
		return nil, d, fmt.Errorf("%s: larger than %d bytes, the most udr reads of a udr.yaml", name, MaxFileSize)
	}
	tokens := lexer.Tokenize(string(data))
	if err := d.checkTokens(tokens); err != nil {
		return nil, d, err
	}
	f, err := yamlparser.Parse(tokens, 0)
	if err != nil {
		return nil, d, d.yamlError(err)
	}
	doc := &fileDoc{}
	if len(f.Docs) > 1 {
		tk := f.Docs[1].Start // "---"
		if tk == nil {
			tk = f.Docs[1].GetToken()
		}
		return nil, d, fmt.Errorf("%s:%d: want one YAML document, got %d", name, tk.Position.Line, len(f.Docs))
	}
	if len(f.Docs) == 0 || f.Docs[0].Body == nil {
		return doc, d, nil // an empty file: every default
	}
	if err := d.checkExpansion(f.Docs[0].Body); err != nil {
		return nil, d, err
	}
	d.index(f.Docs[0].Body, "")
	if err := yaml.NodeToValue(f.Docs[0].Body, doc, yaml.Strict()); err != nil {
		return nil, d, d.yamlError(err)
	}
	return doc, d, nil
}

// index records the line and the tokens of every key and value under n.
func (d *configDecoder) index(n ast.Node, path string) {
	if t := n.GetToken(); t != nil {
		if _, ok := d.lines[path]; !ok {
			d.lines[path] = t.Position.Line
		}
		if _, ok := d.vals[t]; !ok {
			d.vals[t] = path
		}
	}
	switch n := n.(type) {
	case *ast.MappingNode:
		for _, mv := range n.Values {
			d.index(mv, path)
		}
	case *ast.MappingValueNode:
		key := n.Key.GetToken()
		p := key.Value
		if path != "" {
			p = path + "." + key.Value
		}
		d.lines[p] = key.Position.Line
		d.keys[key] = p
		d.index(n.Value, p)
	case *ast.SequenceNode:
		for i, v := range n.Values {
			d.index(v, fmt.Sprintf("%s[%d]", path, i))
		}
	case *ast.AnchorNode:
		d.index(n.Value, path)
	case *ast.TagNode:
		d.index(n.Value, path)
	}
}

// yamlError rewrites an error of the YAML library as "name:line: path:
// message", without the library's source excerpt and Go type names.
func (d *configDecoder) yamlError(err error) error {
	var ye yaml.Error
	if !errors.As(err, &ye) || ye.GetToken() == nil {
		return fmt.Errorf("%s: %w", d.name, err)
	}
	tk := ye.GetToken()
	msg := ye.GetMessage()
	path := d.vals[tk]
	var (
		unknown *yaml.UnknownFieldError
		shape   *yaml.UnexpectedNodeTypeError
	)
	switch {
	case errors.As(err, &unknown):
		path, msg = d.keys[tk], "unknown field"
	case errors.As(err, &shape):
		msg = fmt.Sprintf("want a %s, got %s", kindName(shape.Expected), kindName(shape.Actual))
		if shape.Actual == ast.StringType {
			msg += fmt.Sprintf(" %q", tk.Value)
		} else if shape.Actual != ast.MappingType && shape.Actual != ast.SequenceType {
			msg += " " + tk.Value
		}
	}
	if path == "" {
		return fmt.Errorf("%s:%d: %s", d.name, tk.Position.Line, msg)
	}
	return fmt.Errorf("%s:%d: %s: %s", d.name, tk.Position.Line, path, msg)
}

// errorf reports a problem with the value at path, once.
func (d *configDecoder) errorf(path, format string, a ...any) {
	msg := fmt.Sprintf("%s: %s: %s", d.where(path), path, fmt.Sprintf(format, a...))
	if !d.seen[msg] {
		d.seen[msg] = true
		d.report(d.line(path), errors.New(msg))
	}
}

// where returns "name:line" for path, with the line of path or of its
// nearest ancestor in the file (a missing key's mapping), or "name" alone.
func (d *configDecoder) where(path string) string {
	if line := d.line(path); line > 0 {
		return d.name + ":" + strconv.Itoa(line)
	}
	return d.name
}

// line returns the line of path or of its nearest ancestor, or 0.
func (d *configDecoder) line(path string) int {
	for {
		if l, ok := d.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}
