package director

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/udr-lb/udr/admin"
)

// IpvsadmRequest is the body of POST /v1/ipvsadm: one ipvsadm command line
// (without the program name) and, for -R, its standard input.
type IpvsadmRequest struct {
	Args  []string `json:"args"`
	Stdin string   `json:"stdin,omitempty"`
}

// IpvsadmResponse is what the command printed and its exit status, as
// ipvsadm itself would have printed and returned them.
type IpvsadmResponse struct {
	Stdout string `json:"stdout"`
	Stderr string `json:"stderr"`
	Exit   int    `json:"exit"`
}

// MaxRequestBody bounds the body of a control request: room for the
// largest restore (-R) input udr admin sends (admin.MaxRulesSize), whose
// newlines and quotes JSON doubles. A restore of 200,000 rules, as
// ipvsadm-save prints them, is about 12 MB.
const MaxRequestBody = 2*admin.MaxRulesSize + 1<<20

// decodeIpvsadmRequest decodes the body of POST /v1/ipvsadm: exactly one
// JSON object with no field but args and stdin, and nothing after it but
// white space.
func decodeIpvsadmRequest(body []byte) (IpvsadmRequest, error) {
	var req IpvsadmRequest
	if err := decodeObject(body, &req, `want a JSON object, {"args": [...], "stdin": "..."}`); err != nil {
		return IpvsadmRequest{}, err
	}
	return req, nil
}

// decodeObject decodes a control request's body into v: exactly one JSON
// object with no field v lacks, and nothing after it but white space. A
// body that is not an object is refused with want, which says what is.
func decodeObject(body []byte, v any, want string) error {
	if t := bytes.TrimLeft(body, " \t\r\n"); len(t) == 0 || t[0] != '{' {
		return errors.New(want)
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode JSON: %w", err)
	}
	end := dec.InputOffset()
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data after the JSON object, from byte %d of %d: want one object only", end, len(body))
	}
	return nil
}
