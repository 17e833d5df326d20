package topologies

import (
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"
)

// EnvPrefix starts the name of every environment variable that overrides a
// topology key: thresholds.loss_pct is SDNOC_THRESHOLDS_LOSS_PCT.
const EnvPrefix = "SDNOC"

// LoadOptions say where a topology's values may come from besides the file.
// The zero value reads the file only.
type LoadOptions struct {
	// Env looks up an environment variable, as os.LookupEnv does. Variables
	// named after a scalar key (see EnvVar) override the file; empty ones
	// are ignored. nil: no environment overrides.
	Env func(key string) (string, bool)
}

// Load reads the topology file at path, applies the SDNOC_ environment
// overrides from the process environment, fills in defaults and validates
// the result. A bad file is refused as a whole: the error lists every
// problem, one a line, and no Topology is returned.
func Load(path string) (*Topology, error) {
	return LoadOptions{Env: os.LookupEnv}.Load(path)
}

// Parse is Load for a topology already in memory, without environment
// overrides. name is used in error messages and as Topology.Source.
func Parse(name string, data []byte) (*Topology, error) {
	return LoadOptions{}.Parse(name, data)
}

// Load reads the topology file at path; see the package function Load.
func (o LoadOptions) Load(path string) (*Topology, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read topology: %w", err)
	}
	return o.Parse(path, data)
}

// Parse decodes, defaults and validates the YAML topology in data, with
// o's overrides; name is used in error messages and as Topology.Source.
func (o LoadOptions) Parse(name string, data []byte) (*Topology, error) {
	// The YAML is decoded here rather than by viper's ReadConfig, because
	// viper lowercases keys (util.go insensitiviseMap), so "Name" would pass
	// for "name", and "name" and "NAME" together would keep either value
	// depending on map order. lowerKeys refuses such keys first.
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, joinErrors(name, []fieldError{{"", "not valid YAML: " + yamlError(err)}}, nil)
	}
	var e errList
	lowerKeys(&e, "", doc)

	// An instance per call: viper's global instance is shared state.
	v := viper.New()
	if err := v.MergeConfigMap(doc); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	env := o.override(v)
	raw := decode(&e, settings(v, &e))
	t := raw.convert(&e)
	// Validation runs even when decoding found problems, so that one
	// attempt shows every mistake; merge drops those that only repeat a
	// value that failed to decode.
	e.merge(t.problems())
	if err := joinErrors(name, e.errs, env); err != nil {
		return nil, err
	}
	t.Source = name
	return t, nil
}

// override sets the keys named by environment variables on v, and returns
// which keys came from which variable, for the error messages.
func (o LoadOptions) override(v *viper.Viper) map[string]string {
	if o.Env == nil {
		return nil
	}
	from := make(map[string]string)
	for _, key := range envKeys() {
		name := EnvVar(key)
		if val, ok := o.Env(name); ok && val != "" {
			v.Set(key, val)
			from[key] = name
		}
	}
	return from
}

// EnvVar returns the environment variable that overrides key, a
// dot-separated scalar key such as "thresholds.loss_pct": EnvPrefix, "_",
// then the key in upper case with dots as underscores.
func EnvVar(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// envKeys lists the keys the environment can override: the scalar keys
// outside lists. Keys inside pops and prefixes have no fixed name, so the
// environment cannot reach them.
func envKeys() []string {
	keys := []string{"name"}
	for _, k := range fieldKeys(thresholdFields) {
		keys = append(keys, "thresholds."+k)
	}
	for _, k := range fieldKeys(probeFields) {
		keys = append(keys, "probes."+k)
	}
	for _, k := range fieldKeys(bgpFields) {
		keys = append(keys, "bgp."+k)
	}
	for _, k := range fieldKeys(flowFields) {
		keys = append(keys, "flow."+k)
	}
	for _, k := range fieldKeys(telemetryFields) {
		keys = append(keys, "telemetry."+k)
	}
	return keys
}

// settings returns viper's merged view of the file and the overrides as a
// tree of maps. AllSettings would do, but it builds the tree in map order,
// so a file that sets both "a: 1" and "a.b: 2" would decode differently
// from one run to the next; here keys are taken in order and the longer
// one is refused.
func settings(v *viper.Viper, e *errList) map[string]any {
	keys := v.AllKeys()
	slices.Sort(keys)
	doc := make(map[string]any)
	leaves := make(map[string]bool)
next:
	for _, k := range keys {
		val := v.Get(k)
		if _, ok := val.(map[string]any); ok || val == nil {
			// An empty or null key, or a parent shadowed by an override:
			// its leaves, if any, are keys of their own.
			continue
		}
		parts := strings.Split(k, ".")
		for i := 1; i < len(parts); i++ {
			if parent := strings.Join(parts[:i], "."); leaves[parent] {
				e.add(k, "conflicts with %s, which holds a single value; write nested keys as a YAML mapping under it", parent)
				continue next
			}
		}
		leaves[k] = true
		m := doc
		for _, p := range parts[:len(parts)-1] {
			sub, ok := m[p].(map[string]any)
			if !ok {
				sub = make(map[string]any)
				m[p] = sub
			}
			m = sub
		}
		m[parts[len(parts)-1]] = val
	}
	return doc
}

// lowerKeys reports the keys of v, and of the mappings within it, that are
// not in lower case, and lowers them so that one mistake is reported once;
// where the lower-case key is also present, the other one is dropped.
func lowerKeys(e *errList, path string, v any) {
	switch v := v.(type) {
	case map[string]any:
		for _, k := range slices.Sorted(maps.Keys(v)) {
			item := v[k]
			if lower := strings.ToLower(k); lower != k {
				e.add(keyPath(path, k), "keys are lower case; write %q", lower)
				delete(v, k)
				if _, taken := v[lower]; taken {
					continue
				}
				v[lower], k = item, lower
			}
			lowerKeys(e, keyPath(path, k), item)
		}
	case map[any]any:
		// A mapping with keys that are not all strings; those keys are
		// unknown, which decoding reports. Its string keys are lowered
		// here all the same.
		var upper []string
		for k := range v {
			if s, ok := k.(string); ok && strings.ToLower(s) != s {
				upper = append(upper, s)
			}
		}
		slices.Sort(upper)
		for _, k := range upper {
			lower, item := strings.ToLower(k), v[k]
			e.add(keyPath(path, k), "keys are lower case; write %q", lower)
			delete(v, k)
			if _, taken := v[lower]; !taken {
				v[lower] = item
			}
		}
		for k, item := range v {
			lowerKeys(e, keyPath(path, fmt.Sprint(k)), item)
		}
	case []any:
		for i, item := range v {
			lowerKeys(e, fmt.Sprintf("%s[%d]", path, i), item)
		}
	}
}

// yamlError returns the YAML parser's message on one line.
func yamlError(err error) string {
	msg := strings.Join(strings.Fields(err.Error()), " ")
	if strings.Contains(msg, "into map[string]interface {}") {
		// The document parsed, but as a list or a scalar.
		msg = "the top level must be a mapping of keys (" + strings.Join(topKeys, ", ") + "): " + msg
	}
	return msg
}
