package metrics

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/udr-lb/udr/internal/bounded"
)

// dashboardPath is the Grafana dashboard of udr's metrics.
const dashboardPath = "../dist/grafana/udr.json"

// exportedLabels returns every metric family udr's metrics endpoint serves
// (Handler, as udr run builds it: rates, listeners, BGP), with the label
// names of its series, from a state in which every family has series.
func exportedLabels(t *testing.T) map[string]map[string]bool {
	t.Helper()
	s := fakeSnapshot()
	s.Sync.Dropped = map[string]uint64{"decode": 1}
	bgp := &BGP{Peers: []BGPPeer{{Address: "192.0.2.1", Up: true}}, Routes: []BGPRoute{{Prefix: "192.0.2.100/32", Announced: true}}}
	h, err := Handler(
		NewCollector(func() Snapshot { return s }, &Options{Rates: true, Listeners: map[string]*bounded.Counters{"metrics": {}}}),
		NewBGPCollector(func() *BGP { return bgp }))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("parse the exposition: %v", err)
	}
	out := make(map[string]map[string]bool)
	for name, mf := range families {
		labels := make(map[string]bool)
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = true
			}
		}
		out[name] = labels
	}
	return out
}

// promqlRefs returns the metric names and the label names (in matchers and
// in by, without, on, ignoring, group_left and group_right lists) that a
// PromQL expression refers to. It is a lexer, not a parser: enough for a
// dashboard's queries, failing on what it does not know.
func promqlRefs(expr string) (metrics, labels []string, err error) {
	isIdent := func(c byte, first bool) bool {
		return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
	}
	skipSpace := func(i int) int {
		for i < len(expr) && (expr[i] == ' ' || expr[i] == '\n' || expr[i] == '\t') {
			i++
		}
		return i
	}
	ident := func(i int) (string, int) {
		j := i
		for j < len(expr) && isIdent(expr[j], j == i) {
			j++
		}
		return expr[i:j], j
	}
	skipString := func(i int) (int, error) {
		q := expr[i]
		for j := i + 1; j < len(expr); j++ {
			if expr[j] == '\\' && q != '`' {
				j++
				continue
			}
			if expr[j] == q {
				return j + 1, nil
			}
		}
		return 0, fmt.Errorf("unterminated string at %d", i)
	}
	grouping := map[string]bool{"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true}
	keywords := map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "atan2": true}
	// Aggregations may put their by or without list before the parenthesis.
	for _, a := range []string{"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk", "topk", "quantile", "limitk", "limit_ratio"} {
		keywords[a] = true
	}
	for i := 0; i < len(expr); {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			if i, err = skipString(i); err != nil {
				return nil, nil, err
			}
		case c == '[': // a range or subquery duration, $__rate_interval
			j := strings.IndexByte(expr[i:], ']')
			if j < 0 {
				return nil, nil, fmt.Errorf("unterminated [ at %d", i)
			}
			i += j + 1
		case c == '{': // label matchers
			i++
			for {
				i = skipSpace(i)
				if i < len(expr) && expr[i] == '}' {
					i++
					break
				}
				var name string
				name, i = ident(i)
				if name == "" {
					return nil, nil, fmt.Errorf("no label name at %d", i)
				}
				labels = append(labels, name)
				i = skipSpace(i)
				for i < len(expr) && strings.IndexByte("=!~", expr[i]) >= 0 {
					i++
				}
				i = skipSpace(i)
				if i >= len(expr) || expr[i] != '"' {
					return nil, nil, fmt.Errorf("no label value at %d", i)
				}
				if i, err = skipString(i); err != nil {
					return nil, nil, err
				}
				i = skipSpace(i)
				if i < len(expr) && expr[i] == ',' {
					i++
				}
			}
		case c >= '0' && c <= '9' || c == '.':
			for i < len(expr) && (isIdent(expr[i], false) || expr[i] == '.') {
				i++
			}
		case isIdent(c, true):
			var name string
			name, i = ident(i)
			next := skipSpace(i)
			switch {
			case grouping[name]:
				if next >= len(expr) || expr[next] != '(' {
					return nil, nil, fmt.Errorf("%s without a label list", name)
				}
				end := strings.IndexByte(expr[next:], ')')
				if end < 0 {
					return nil, nil, fmt.Errorf("unterminated %s list", name)
				}
				for l := range strings.SplitSeq(expr[next+1:next+end], ",") {
					if l = strings.TrimSpace(l); l != "" {
						labels = append(labels, l)
					}
				}
				i = next + end + 1
			case keywords[name]:
			case next < len(expr) && expr[next] == '(': // a function or aggregation
			default:
				metrics = append(metrics, name)
			}
		case strings.IndexByte(" \n\t()+-*/%^=!<>,", c) >= 0:
			i++
		default:
			return nil, nil, fmt.Errorf("unexpected %q at %d", c, i)
		}
	}
	return metrics, labels, nil
}

func TestPromQLRefs(t *testing.T) {
	m, l, err := promqlRefs(`sum by (service, server) (rate(udr_x_total{instance=~"$i",a!="}"}[$__rate_interval])) / on(instance) group_left() udr_y > 0 or vector(0)`)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"udr_x_total", "udr_y"}; !slices.Equal(m, want) {
		t.Errorf("metrics %q, want %q", m, want)
	}
	if want := []string{"service", "server", "instance", "a", "instance"}; !slices.Equal(l, want) {
		t.Errorf("labels %q, want %q", l, want)
	}
	if _, _, err := promqlRefs(`rate(udr_x{a="b}[5m])`); err == nil {
		t.Error("no error for an unterminated string")
	}
}

// dashboard is the part of Grafana's dashboard model the test checks.
type dashboard struct {
	UID           string `json:"uid"`
	Title         string `json:"title"`
	SchemaVersion int    `json:"schemaVersion"`
	Templating    struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
	Panels []panel `json:"panels"`
}

type panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *datasource `json:"datasource"`
	GridPos    *struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []struct {
		Expr       string      `json:"expr"`
		RefID      string      `json:"refId"`
		Datasource *datasource `json:"datasource"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's
}

type datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// TestDashboard checks dist/grafana/udr.json: Grafana's basics (uid,
// a Prometheus data source variable that every panel and query uses,
// panels placed on the 24-column grid without overlapping) and that every
// query refers only to metrics udr exports, with their label names, so
// that renaming a metric or a label breaks this test rather than the
// dashboard.
func TestDashboard(t *testing.T) {
	data, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	if d.UID == "" || d.Title == "" || d.SchemaVersion < 36 {
		t.Errorf("uid %q, title %q, schemaVersion %d: want a uid, a title and schemaVersion >= 36", d.UID, d.Title, d.SchemaVersion)
	}
	exported := exportedLabels(t)
	// instance and job are the scrape's target labels.
	check := func(where, expr string) {
		t.Helper()
		metrics, labels, err := promqlRefs(expr)
		if err != nil {
			t.Errorf("%s: %q: %v", where, expr, err)
			return
		}
		if len(metrics) == 0 {
			t.Errorf("%s: %q refers to no metric", where, expr)
		}
		known := map[string]bool{"instance": true, "job": true}
		for _, m := range metrics {
			ls, ok := exported[m]
			if !ok {
				t.Errorf("%s: %q: udr exports no metric %s", where, expr, m)
			}
			for l := range ls {
				known[l] = true
			}
		}
		for _, l := range labels {
			if !known[l] {
				t.Errorf("%s: %q: label %s is not one of %s's", where, expr, l, strings.Join(metrics, ", "))
			}
		}
	}

	hasDS := false
	for _, v := range d.Templating.List {
		switch v.Type {
		case "datasource":
			var q string
			if err := json.Unmarshal(v.Query, &q); err != nil || q != "prometheus" || v.Name != "datasource" {
				t.Errorf("data source variable %q, query %s: want datasource, prometheus", v.Name, v.Query)
			}
			hasDS = true
		case "query":
			var q struct{ Query string }
			if err := json.Unmarshal(v.Query, &q); err != nil {
				t.Errorf("variable %s: query %s: %v", v.Name, v.Query, err)
				continue
			}
			inner, ok := strings.CutPrefix(q.Query, "label_values(")
			comma := strings.LastIndexByte(inner, ',')
			if !ok || comma < 0 || !strings.HasSuffix(inner, ")") {
				t.Errorf("variable %s: query %q is not label_values(METRIC, LABEL)", v.Name, q.Query)
				continue
			}
			label := strings.TrimSpace(strings.TrimSuffix(inner[comma+1:], ")"))
			check("variable "+v.Name, inner[:comma])
			if m, _, _ := promqlRefs(inner[:comma]); len(m) == 1 && !exported[m[0]][label] && label != "instance" && label != "job" {
				t.Errorf("variable %s: %s has no label %s", v.Name, m[0], label)
			}
		}
	}
	if !hasDS {
		t.Error("no data source variable")
	}

	ids := make(map[int]bool)
	type rect struct {
		title      string
		x, y, w, h int
	}
	var placed []rect
	queries := 0
	var walk func(ps []panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] || p.ID == 0 {
				t.Errorf("panel %q: id %d missing or not unique", p.Title, p.ID)
			}
			ids[p.ID] = true
			g := p.GridPos
			if g == nil || g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
				t.Errorf("panel %q: gridPos %+v not on the 24-column grid", p.Title, g)
				continue
			}
			for _, r := range placed {
				if g.X < r.x+r.w && r.x < g.X+g.W && g.Y < r.y+r.h && r.y < g.Y+g.H {
					t.Errorf("panel %q overlaps panel %q", p.Title, r.title)
				}
			}
			placed = append(placed, rect{p.Title, g.X, g.Y, g.W, g.H})
			if p.Type == "row" {
				walk(p.Panels)
				continue
			}
			if p.Datasource == nil || *p.Datasource != (datasource{"prometheus", "${datasource}"}) {
				t.Errorf("panel %q: datasource %+v, want the ${datasource} variable", p.Title, p.Datasource)
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q has no query", p.Title)
			}
			refs := make(map[string]bool)
			for _, q := range p.Targets {
				if q.RefID == "" || refs[q.RefID] {
					t.Errorf("panel %q: refId %q missing or not unique", p.Title, q.RefID)
				}
				refs[q.RefID] = true
				if q.Datasource != nil && *q.Datasource != *p.Datasource {
					t.Errorf("panel %q: query %s has datasource %+v", p.Title, q.RefID, q.Datasource)
				}
				check(fmt.Sprintf("panel %q", p.Title), q.Expr)
				queries++
			}
		}
	}
	walk(d.Panels)
	if queries < 40 {
		t.Errorf("%d queries checked", queries)
	}

	// What the dashboard leaves out, for whoever edits it.
	used := make(map[string]bool)
	for _, m := range words(string(data)) {
		used[m] = true
	}
	var unused []string
	for name := range exported {
		if strings.HasPrefix(name, "udr_") && !used[name] {
			unused = append(unused, name)
		}
	}
	sort.Strings(unused)
	t.Logf("%d queries; udr metrics not on the dashboard: %s", queries, strings.Join(unused, " "))
}

// words returns the words of lower case letters, digits and _ in s.
func words(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool {
		return !(r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
}
