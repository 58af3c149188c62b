// Package config reads udr.yaml, the configuration file of `udr run`.
// Load decodes it strictly (unknown keys are errors), fills in every
// default, and reports every problem at once, each with its file, line and
// field path; it returns the File (the daemon's settings and the health
// checks) and the virtual server table that the file's services or its
// rules file define, built through the same admin.Apply that ipvsadm
// commands go through. Check is Load for `udr config check`. This package
// and cmd/udr are the only ones that import a YAML library.
package config
