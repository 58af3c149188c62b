package config

import (
	"fmt"
	"io"
	"os"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// Bounds of what udr reads of a udr.yaml, checked before the file is
// parsed: the YAML parser's time and memory grow with the square of the
// nesting depth (40,000 levels of "[" took more than 6 GB), and aliases
// can make a small document a huge one. udr.yaml's own shape nests 7
// levels deep (services, a service, servers, a server, health_check, a
// key) and needs few aliases.
const (
	MaxFileSize = 1 << 20   // bytes of a udr.yaml
	MaxDepth    = 32        // nesting of mappings and lists, block and flow
	MaxAliases  = 100       // aliases (*name) in a udr.yaml
	maxExpanded = 1_000_000 // nodes of the document with every alias expanded
)

// readLimited reads the file at path, at most max bytes: a larger file,
// or one that never ends (a device, a pipe), is an error naming what.
func readLimited(path, what string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", what, err)
	}
	if int64(len(data)) > max {
		return nil, fmt.Errorf("%s: larger than %d bytes, the most udr reads of a %s", path, max, what)
	}
	return data, nil
}

// checkTokens checks the tokens of a udr.yaml before they are parsed: at
// most MaxDepth levels of nesting and MaxAliases aliases. Block nesting is
// counted by the columns of the open collections' keys and "-" entries,
// flow nesting by the open "[" and "{".
func (d *configDecoder) checkTokens(tokens token.Tokens) error {
	var (
		flow    int
		block   []int // columns of the open block collections, increasing
		aliases int
	)
	open := func(col int) {
		for len(block) > 0 && block[len(block)-1] > col {
			block = block[:len(block)-1]
		}
		if len(block) == 0 || block[len(block)-1] < col {
			block = append(block, col)
		}
	}
	for i, tk := range tokens {
		switch tk.Type {
		case token.DocumentHeaderType, token.DocumentEndType:
			flow, block = 0, block[:0]
		case token.SequenceStartType, token.MappingStartType:
			flow++
		case token.SequenceEndType, token.MappingEndType:
			flow = max(flow-1, 0)
		case token.SequenceEntryType, token.MappingKeyType:
			if flow == 0 {
				open(tk.Position.Column)
			}
		case token.MappingValueType:
			if flow == 0 && i > 0 {
				open(tokens[i-1].Position.Column) // the key's
			}
		case token.AliasType:
			if aliases++; aliases > MaxAliases {
				return fmt.Errorf("%s:%d: more than %d aliases: udr reads no more", d.name, tk.Position.Line, MaxAliases)
			}
		}
		if flow+len(block) > MaxDepth {
			return fmt.Errorf("%s:%d: nested more than %d levels deep: udr reads no deeper", d.name, tk.Position.Line, MaxDepth)
		}
	}
	return nil
}

// checkExpansion checks that the document n, with every alias replaced by
// what it names, has at most maxExpanded nodes: aliases of collections
// that hold aliases multiply.
func (d *configDecoder) checkExpansion(n ast.Node) error {
	anchors := make(map[string]int)
	if size(n, anchors) > maxExpanded {
		return fmt.Errorf("%s: its aliases expand it to more than %d nodes: udr reads no more", d.name, maxExpanded)
	}
	return nil
}

// size returns the number of nodes of n with its aliases expanded, at
// most maxExpanded+1; anchors holds the size of every anchor seen so far.
func size(n ast.Node, anchors map[string]int) int {
	if n == nil {
		return 0
	}
	sum := func(nodes ...ast.Node) int {
		s := 1
		for _, c := range nodes {
			s = min(s+size(c, anchors), maxExpanded+1)
		}
		return s
	}
	switch n := n.(type) {
	case *ast.DocumentNode:
		return sum(n.Body)
	case *ast.MappingNode:
		s := 1
		for _, v := range n.Values {
			s = min(s+size(v, anchors), maxExpanded+1)
		}
		return s
	case *ast.MappingValueNode:
		return sum(n.Key, n.Value)
	case *ast.MappingKeyNode:
		return sum(n.Value)
	case *ast.SequenceNode:
		s := 1
		for _, v := range n.Values {
			s = min(s+size(v, anchors), maxExpanded+1)
		}
		return s
	case *ast.TagNode:
		return sum(n.Value)
	case *ast.AnchorNode:
		s := sum(n.Value)
		if n.Name != nil {
			anchors[n.Name.GetToken().Value] = s
		}
		return s
	case *ast.AliasNode:
		if n.Value != nil {
			if s, ok := anchors[n.Value.GetToken().Value]; ok {
				return s
			}
		}
		return 1
	}
	return 1
}
