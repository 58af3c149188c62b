package health

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// A misc check runs a program, as keepalived's MISC_CHECK: exit status 0
// passes, any other fails; with MiscDynamic, 2..255 passes and sets the
// server's weight to the status minus 2 (0..253), 1 fails
// (keepalived/check/check_misc.c). The program is exec'd directly with
// its arguments (no shell, as keepalived for an executable), in the
// checker's network namespace, with udr's environment less IFS,
// LD_PRELOAD and LD_LIBRARY_PATH (keepalived's notify.c drops those),
// stdin, stdout and stderr on /dev/null, in a process group of its own.
// At the check's timeout that whole group is killed (SIGKILL) and the
// check fails. The checker runs one check of a target at a time, so a
// server has at most one script running; Wait reaps it, so none is left a
// zombie.

// miscWaitDelay bounds the wait for a killed script to be reaped.
const miscWaitDelay = 2 * time.Second

// weightResult is what a misc_dynamic check that passed with a status of
// 2..255 returns in place of nil: the server passes, with this weight.
// finish takes it apart; it never reaches a report as a failure.
type weightResult int

func (w weightResult) Error() string { return fmt.Sprintf("passed with weight %d", int(w)) }

// runMisc runs the script of a misc check; ctx carries its timeout.
func (c *Checker) runMisc(ctx context.Context, t Target) error {
	args, err := SplitScript(t.Check.Script)
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, args[0], args[1:]...)
	cmd.Env = scriptEnv(os.Environ())
	cmd.SysProcAttr = scriptAttr()
	cmd.Cancel = func() error {
		// The script and whatever it started: its group, which Setpgid
		// made with the script's pid as id.
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	cmd.WaitDelay = miscWaitDelay
	// Start forks on this thread: the script runs in the checker's
	// namespace.
	if err := c.ns.Do(cmd.Start); err != nil {
		return fmt.Errorf("misc check %s: %w", args[0], err)
	}
	err = cmd.Wait()
	if err != nil && ctx.Err() != nil {
		return fmt.Errorf("misc check %s: timed out after %v, killed", args[0], t.Check.Timeout)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &ee) && ee.Exited():
		code := ee.ExitCode()
		if t.Check.MiscDynamic && code >= 2 {
			return weightResult(code - 2)
		}
		return fmt.Errorf("misc check %s: exit status %d", args[0], code)
	}
	return fmt.Errorf("misc check %s: %w", args[0], err)
}

// scriptEnv returns env without the variables keepalived removes before
// running a script.
func scriptEnv(env []string) []string {
	out := env[:0:0]
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		switch name {
		case "IFS", "LD_PRELOAD", "LD_LIBRARY_PATH":
			continue
		}
		out = append(out, kv)
	}
	return out
}

// maxScript bounds the length of a misc check's script line.
const maxScript = 4096

// SplitScript splits a misc check's script line into the program and its
// arguments, as keepalived reads misc_path: words separated by blanks,
// '…' quoting literally, "…" quoting with \ escaping, \ escaping the next
// character outside quotes. It fails on an empty line, an unterminated
// quote, a trailing \, a NUL or control character, or a line longer than
// 4096 bytes.
func SplitScript(line string) ([]string, error) {
	if len(line) > maxScript {
		return nil, fmt.Errorf("script of %d bytes: want at most %d", len(line), maxScript)
	}
	var words []string
	var cur strings.Builder
	inWord := false
	var quote byte // 0, '\'' or '"'
	for i := 0; i < len(line); i++ {
		ch := line[i]
		if ch < ' ' && ch != '\t' || ch == 0x7f {
			return nil, fmt.Errorf("script %q has %s at byte %d", line, charName(ch), i)
		}
		switch {
		case quote == '\'':
			if ch == '\'' {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case ch == '\\' && quote == '"' && i+1 < len(line) && strings.IndexByte(`"\$`+"`", line[i+1]) < 0:
			cur.WriteByte(ch) // inside "…", \ escapes only " \ $ `
		case ch == '\\':
			if i+1 == len(line) {
				return nil, fmt.Errorf("script %q ends with \\", line)
			}
			i++
			cur.WriteByte(line[i])
			inWord = true
		case quote == '"':
			if ch == '"' {
				quote = 0
			} else {
				cur.WriteByte(ch)
			}
		case ch == '\'' || ch == '"':
			quote = ch
			inWord = true
		case ch == ' ' || ch == '\t':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteByte(ch)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("script %q: unterminated %c quote", line, quote)
	}
	if inWord {
		words = append(words, cur.String())
	}
	if len(words) == 0 || words[0] == "" {
		return nil, errors.New("script: empty, want a program and its arguments")
	}
	return words, nil
}
