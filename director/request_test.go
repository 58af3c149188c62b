package director

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestDecodeIpvsadmRequest(t *testing.T) {
	tests := []struct {
		name string
		body string
		want IpvsadmRequest
		err  string // a part of the error, "" for none
	}{
		{name: "args", body: `{"args":["-L","-n"]}`, want: IpvsadmRequest{Args: []string{"-L", "-n"}}},
		{name: "args and stdin", body: `{"args":["-R"],"stdin":"-A -t 192.0.2.100:80 -s rr\n"}`,
			want: IpvsadmRequest{Args: []string{"-R"}, Stdin: "-A -t 192.0.2.100:80 -s rr\n"}},
		{name: "white space around", body: " \r\n\t{\"args\": [\"-L\"]}\n\n", want: IpvsadmRequest{Args: []string{"-L"}}},
		{name: "no args", body: `{}`, want: IpvsadmRequest{}},
		{name: "a second object", body: `{"args":["-L","-n"]}{"args":["-C"]}`,
			err: "trailing data after the JSON object, from byte 20 of 35: want one object only"},
		{name: "trailing garbage", body: `{"args":["-C"]} x`, err: "trailing data after the JSON object, from byte 15 of 17"},
		{name: "trailing brace", body: `{"args":["-C"]}}`, err: "trailing data after the JSON object"},
		{name: "trailing value after newline", body: "{\"args\":[\"-L\"]}\n[1]", err: "trailing data after the JSON object"},
		{name: "null", body: `null`, err: "want a JSON object"},
		{name: "array", body: `[["-L"]]`, err: "want a JSON object"},
		{name: "empty", body: ``, err: "want a JSON object"},
		{name: "white space only", body: "  \n", err: "want a JSON object"},
		{name: "unknown field", body: `{"args":["-L"],"argv":["-C"]}`, err: `decode JSON: json: unknown field "argv"`},
		{name: "args not strings", body: `{"args":[1]}`, err: "decode JSON: json: cannot unmarshal number"},
		{name: "unterminated", body: `{"args":["-L"`, err: "decode JSON: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := decodeIpvsadmRequest([]byte(tt.body))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("decode %q = %+v, %v; want an error containing %q", tt.body, got, err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode %q: %v", tt.body, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("decode %q (-want +got):\n%s", tt.body, diff)
			}
		})
	}
}

// FuzzIpvsadmRequest decodes any body of POST /v1/ipvsadm: it never
// panics, and what it accepts is one JSON object and nothing else, whose
// decoding survives a round trip.
func FuzzIpvsadmRequest(f *testing.F) {
	for _, seed := range []string{
		`{"args":["-L","-n"]}`,                                // a listing
		`{"args":["-R"],"stdin":"-A -t 192.0.2.100:80\n"}`,    // a restore
		`{"args":["-L"]}{"args":["-C"]}`,                      // a second object: refused
		`{"args":["-L"]} `,                                    // trailing white space: accepted
		`{"args":["-L"]}]`,                                    // a stray bracket
		`{"args":null,"stdin":""}`,                            // null args
		`{"args":["\u0000","\ud800"],"stdin":"\xff"}`,         // NUL, a lone surrogate, invalid UTF-8
		`{"args":["-L"],"args":["-C"]}`,                       // a duplicate key
		`{"Args":["-L"]}`,                                     // the field's name in another case
		`null`,                                                // not an object
		`{"args":[` + strings.Repeat(`"-L",`, 100) + `"-n"]}`, // many arguments
		strings.Repeat(`{"a":`, 1000),                         // deep nesting, unterminated
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := decodeIpvsadmRequest(body)
		if err != nil {
			if !reflect.DeepEqual(req, IpvsadmRequest{}) {
				t.Fatalf("decode %q failed (%v) but returned %+v", body, err, req)
			}
			return
		}
		if !json.Valid(body) {
			t.Fatalf("decode %q accepted a body that is not one JSON value", body)
		}
		again, err := json.Marshal(req)
		if err != nil {
			t.Fatal(err)
		}
		back, err := decodeIpvsadmRequest(again)
		if err != nil {
			t.Fatalf("decode of the re-encoded %s: %v", again, err)
		}
		if !reflect.DeepEqual(req, back) {
			t.Fatalf("round trip of %q: %+v, then %+v", body, req, back)
		}
	})
}
