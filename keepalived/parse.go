// Package keepalived reads a keepalived.conf as it is and translates what
// a direct-routing director's configuration holds (its virtual_server and
// virtual_server_group blocks) into the equivalent udr.yaml.
//
// The file is read in two steps: Parse splits it, with the files it
// includes, into statements (a keyword, its words, and its block, if any),
// each with the file and line it was written on; Translate turns those
// statements into udr.yaml text. Both report every problem they find, each
// as "file:line: keyword: message", joined.
package keepalived

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// Bounds of what udr reads of a keepalived.conf and the files it includes,
// as udr.yaml is bounded (config.MaxFileSize, config.MaxDepth).
const (
	MaxFileSize     = 1 << 20 // bytes of one file
	MaxTotalSize    = 8 << 20 // bytes of every file read, includes too
	MaxFiles        = 256     // files read, the main one included
	MaxIncludeDepth = 8       // include of an include of ...
	MaxNesting      = 16      // blocks within blocks
	MaxWords        = 64      // words of one statement
)

// Stmt is one statement: a keyword and its arguments, and the statements
// of its block when it has one ({ ... }).
type Stmt struct {
	Words    []string // the keyword first; never empty
	File     string
	Line     int
	HasBlock bool
	Block    []*Stmt
}

// Keyword returns the statement's first word.
func (s *Stmt) Keyword() string { return s.Words[0] }

// Args returns the words after the keyword.
func (s *Stmt) Args() []string { return s.Words[1:] }

// At returns "file:line".
func (s *Stmt) At() string { return fmt.Sprintf("%s:%d", s.File, s.Line) }

type tokKind uint8

const (
	tokWord tokKind = iota
	tokOpen
	tokClose
	tokEOL
)

type token struct {
	kind tokKind
	text string
	file string
	line int
}

// lexer reads files into one stream of tokens, includes expanded in place.
type lexer struct {
	toks     []token
	files    int
	total    int
	warnings []string
	errs     []error
}

// ReadFile reads a file as the lexer would (bounded), for Parse and tests.
func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("%s: larger than %d bytes, the most udr reads of a keepalived.conf", path, MaxFileSize)
	}
	return data, nil
}

// Parse reads the keepalived.conf at path and the files it includes into
// its top-level statements. Warnings are about what keepalived itself
// would ignore (an include that matches no file).
func Parse(path string) ([]*Stmt, []string, error) {
	data, err := readFile(path)
	if err != nil {
		return nil, nil, fmt.Errorf("read keepalived.conf: %w", err)
	}
	return ParseData(data, path, fileReader(readFile))
}

// fileReader reads an included file.
type fileReader func(path string) ([]byte, error)

// ParseData is Parse of data, named name; read reads the files it
// includes (nil: an include is an error).
func ParseData(data []byte, name string, read fileReader) ([]*Stmt, []string, error) {
	lx := &lexer{}
	lx.lex(data, name, 0, read)
	if len(lx.errs) > 0 {
		return nil, lx.warnings, errors.Join(lx.errs...)
	}
	p := &parser{toks: lx.toks}
	stmts := p.block(0)
	if len(p.errs) > 0 {
		return nil, lx.warnings, errors.Join(p.errs...)
	}
	return stmts, lx.warnings, nil
}

func (lx *lexer) errorf(file string, line int, format string, args ...any) {
	lx.errs = append(lx.errs, fmt.Errorf("%s:%d: "+format, append([]any{file, line}, args...)...))
}

// lex appends the tokens of data (the file name) to lx.toks.
func (lx *lexer) lex(data []byte, name string, depth int, read fileReader) {
	lx.files++
	lx.total += len(data)
	for n, line := range strings.Split(string(data), "\n") {
		if len(lx.errs) > 0 {
			return
		}
		ln := n + 1
		words, err := splitLine(line)
		if err != nil {
			lx.errorf(name, ln, "%v", err)
			continue
		}
		if len(words) >= 1 && words[0].kind == tokWord && words[0].text == "include" {
			lx.include(words[1:], name, ln, depth, read)
			continue
		}
		for _, w := range words {
			w.file, w.line = name, ln
			lx.toks = append(lx.toks, w)
		}
		lx.toks = append(lx.toks, token{kind: tokEOL, file: name, line: ln})
	}
}

// include reads the files that the include line's patterns match, in
// sorted order, relative to the including file's directory.
func (lx *lexer) include(args []token, name string, line, depth int, read fileReader) {
	if len(args) == 0 {
		lx.errorf(name, line, "include: no file named")
		return
	}
	if depth+1 > MaxIncludeDepth {
		lx.errorf(name, line, "include: nested more than %d files deep: udr reads no deeper", MaxIncludeDepth)
		return
	}
	if read == nil {
		lx.errorf(name, line, "include: not possible here")
		return
	}
	for _, a := range args {
		if a.kind != tokWord {
			lx.errorf(name, line, "include: %q is not a file name", a.text)
			return
		}
		pattern := a.text
		if !filepath.IsAbs(pattern) {
			pattern = filepath.Join(filepath.Dir(name), pattern)
		}
		matches, err := filepath.Glob(pattern)
		if err != nil {
			lx.errorf(name, line, "include %s: %v", a.text, err)
			return
		}
		if len(matches) == 0 {
			// keepalived logs it and goes on.
			lx.warnings = append(lx.warnings, fmt.Sprintf("%s:%d: include %s: no file matches", name, line, a.text))
			continue
		}
		sort.Strings(matches)
		for _, m := range matches {
			if lx.files+1 > MaxFiles {
				lx.errorf(name, line, "include %s: more than %d files: udr reads no more", a.text, MaxFiles)
				return
			}
			data, err := read(m)
			if err != nil {
				lx.errorf(name, line, "include %s: %v", a.text, err)
				return
			}
			if lx.total+len(data) > MaxTotalSize {
				lx.errorf(name, line, "include %s: the files read exceed %d bytes: udr reads no more", a.text, MaxTotalSize)
				return
			}
			lx.lex(data, m, depth+1, read)
		}
	}
}

// splitLine splits one line into words and braces: "#" or "!" at the start
// of a word begins a comment, a double-quoted string is one word.
func splitLine(line string) ([]token, error) {
	var out []token
	i := 0
	for i < len(line) {
		c := line[i]
		switch {
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			i++
		case c == '#' || c == '!':
			return out, nil
		case c == '{':
			out = append(out, token{kind: tokOpen, text: "{"})
			i++
		case c == '}':
			out = append(out, token{kind: tokClose, text: "}"})
			i++
		case c == '"':
			end := strings.IndexByte(line[i+1:], '"')
			if end < 0 {
				return nil, errors.New("a quoted string is not closed on its line")
			}
			out = append(out, token{kind: tokWord, text: line[i+1 : i+1+end]})
			i += end + 2
		default:
			j := i
			for j < len(line) && !strings.ContainsRune(" \t\r\f\v{}\"", rune(line[j])) {
				j++
			}
			out = append(out, token{kind: tokWord, text: line[i:j]})
			i = j
		}
		if len(out) > MaxWords {
			return nil, fmt.Errorf("more than %d words on a line: udr reads no more", MaxWords)
		}
	}
	return out, nil
}

// parser groups tokens into statements and blocks.
type parser struct {
	toks []token
	i    int
	errs []error
}

func (p *parser) errorf(file string, line int, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s:%d: "+format, append([]any{file, line}, args...)...))
}

// block reads statements until the "}" that closes the block (depth > 0)
// or the end of the tokens.
func (p *parser) block(depth int) []*Stmt {
	var out []*Stmt
	var cur *Stmt
	finish := func() {
		if cur != nil {
			out = append(out, cur)
			cur = nil
		}
	}
	for p.i < len(p.toks) && len(p.errs) == 0 {
		t := p.toks[p.i]
		p.i++
		switch t.kind {
		case tokEOL:
			finish()
		case tokWord:
			if cur == nil {
				cur = &Stmt{File: t.file, Line: t.line}
			}
			cur.Words = append(cur.Words, t.text)
		case tokOpen:
			target := cur
			if target == nil {
				// "{" at the start of a line opens the block of the
				// statement on the line before.
				if len(out) == 0 || out[len(out)-1].HasBlock {
					p.errorf(t.file, t.line, "'{' follows no keyword")
					return out
				}
				target = out[len(out)-1]
			} else {
				finish()
			}
			if depth+1 > MaxNesting {
				p.errorf(t.file, t.line, "blocks nested more than %d deep: udr reads no deeper", MaxNesting)
				return out
			}
			target.HasBlock = true
			target.Block = p.block(depth + 1)
			if len(p.errs) > 0 {
				return out
			}
			if p.i > len(p.toks) || p.i == 0 || p.toks[p.i-1].kind != tokClose {
				p.errorf(target.File, target.Line, "%s: its block is not closed by '}'", target.Keyword())
				return out
			}
		case tokClose:
			finish()
			if depth == 0 {
				p.errorf(t.file, t.line, "'}' closes no block")
			}
			return out
		}
	}
	finish()
	return out
}
