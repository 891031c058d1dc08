package org.egressproxy.config;

import java.io.Reader;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import org.yaml.snakeyaml.LoaderOptions;
import org.yaml.snakeyaml.Yaml;
import org.yaml.snakeyaml.error.MarkedYAMLException;
import org.yaml.snakeyaml.error.YAMLException;
import org.yaml.snakeyaml.nodes.MappingNode;
import org.yaml.snakeyaml.nodes.Node;
import org.yaml.snakeyaml.nodes.NodeTuple;
import org.yaml.snakeyaml.nodes.ScalarNode;
import org.yaml.snakeyaml.nodes.SequenceNode;
import org.yaml.snakeyaml.nodes.Tag;

/**
 * Typed reading of a SnakeYAML node tree with a line for every value, so that each problem is
 * reported as {@code FILE:LINE: message} and reading goes on after it. We read the composed node
 * tree, not Java objects, because only nodes carry their position.
 */
public final class YamlReader {
  private final String file;
  private final Problems problems;

  public YamlReader(String file, Problems problems) {
    this.file = file;
    this.problems = problems;
  }

  public String file() {
    return file;
  }

  public Problems problems() {
    return problems;
  }

  /** Composes the document; {@code null} (with the problem reported) when it is not YAML. */
  public Node compose(Reader reader) {
    LoaderOptions options = new LoaderOptions();
    options.setAllowDuplicateKeys(true); // reported by MapView with both lines
    options.setMaxAliasesForCollections(20);
    options.setCodePointLimit(16 * 1024 * 1024);
    String text;
    try {
      text = readAll(reader, options.getCodePointLimit());
    } catch (java.io.IOException e) {
      problems.error(new SourceRef(file, 0), "cannot read: " + e.getMessage());
      return null;
    }
    try {
      return new Yaml(options).compose(new java.io.StringReader(text));
    } catch (org.yaml.snakeyaml.reader.ReaderException e) {
      // A character YAML does not allow (a control character, say): it has a position, not a
      // line; count the lines up to it.
      int upTo = Math.min(text.length(), Math.max(0, e.getPosition()));
      int line = 1 + (int) text.substring(0, upTo).chars().filter(c -> c == '\n').count();
      problems.error(new SourceRef(file, line), "not valid YAML: character "
          + String.format("U+%04X", e.getCodePoint()) + " is not allowed in YAML");
      return null;
    } catch (MarkedYAMLException e) {
      int line = e.getProblemMark() != null ? e.getProblemMark().getLine() + 1 : 0;
      problems.error(new SourceRef(file, line), "not valid YAML: " + e.getProblem());
      return null;
    } catch (YAMLException e) {
      problems.error(new SourceRef(file, 0), "not valid YAML: " + e.getMessage());
      return null;
    }
  }

  /** The whole text, up to {@code limit} characters (more is an error SnakeYAML reports). */
  private static String readAll(Reader reader, int limit) throws java.io.IOException {
    StringBuilder sb = new StringBuilder();
    char[] buf = new char[8192];
    int n;
    while ((n = reader.read(buf)) > 0 && sb.length() <= limit) {
      sb.append(buf, 0, n);
    }
    return sb.toString();
  }

  public SourceRef at(Node node) {
    return new SourceRef(file, node == null ? 0 : node.getStartMark().getLine() + 1);
  }

  public void error(Node node, String message) {
    problems.error(at(node), message);
  }

  public void warning(Node node, String message) {
    problems.warning(at(node), message);
  }

  /** The node as a mapping, or {@code null} after reporting that it is not one. */
  public MapView map(Node node, String what) {
    if (node instanceof MappingNode m) {
      return new MapView(m, what);
    }
    error(node, what + " must be a mapping (key: value lines), not " + describe(node));
    return null;
  }

  /** The node as a list of items; a single scalar is not accepted as a list of one. */
  public List<Node> list(Node node, String what) {
    if (node instanceof SequenceNode s) {
      return s.getValue();
    }
    error(node, what + " must be a list (e.g. [a, b] or '- a' lines), not " + describe(node));
    return List.of();
  }

  /** A non-empty string scalar, or {@code null} after reporting. */
  public String string(Node node, String what) {
    if (node instanceof ScalarNode s && !s.getTag().equals(Tag.NULL)) {
      if (s.getValue().isEmpty()) {
        error(node, what + " must not be empty");
        return null;
      }
      return s.getValue();
    }
    error(node, what + " must be a string, not " + describe(node));
    return null;
  }

  /** An integer scalar within [min, max], or {@code null} after reporting. */
  public Integer integer(Node node, String what, int min, int max) {
    if (node instanceof ScalarNode s && s.getTag().equals(Tag.INT)) {
      try {
        long v = Long.parseLong(s.getValue().replace("_", ""));
        if (v >= min && v <= max) {
          return (int) v;
        }
      } catch (NumberFormatException e) {
        // reported below
      }
      error(node, what + " must be between " + min + " and " + max + ", not " + s.getValue());
      return null;
    }
    error(node, what + " must be a whole number (" + min + "-" + max + "), not " + describe(node));
    return null;
  }

  /** {@code true} or {@code false}; {@code dflt} when absent, or after reporting anything else. */
  public boolean bool(Node node, String what, boolean dflt) {
    if (node == null) {
      return dflt;
    }
    if (node instanceof ScalarNode s && s.getTag().equals(Tag.BOOL)) {
      return Boolean.parseBoolean(s.getValue().toLowerCase(java.util.Locale.ROOT));
    }
    error(node, what + " must be true or false, not " + describe(node));
    return dflt;
  }

  /** A port 1-65535. */
  public Integer port(Node node, String what) {
    return integer(node, what, 1, 65535);
  }

  /** A list of ports; {@code null} when absent from the map. */
  public List<Integer> ports(MapView m, String key) {
    Node n = m.get(key);
    if (n == null) {
      return null;
    }
    List<Integer> out = new ArrayList<>();
    for (Node item : list(n, key)) {
      Integer p = port(item, "each of " + key);
      if (p != null) {
        out.add(p);
      }
    }
    if (out.isEmpty() && n instanceof SequenceNode s && s.getValue().isEmpty()) {
      error(n, key + " must list at least one port (leave it out for the default)");
    }
    return out;
  }

  /** A list of strings read with {@code convert} (which may report and return null). */
  public <T> List<T> strings(Node node, String what, Function<String, T> convert) {
    List<T> out = new ArrayList<>();
    for (Node item : list(node, what)) {
      String s = string(item, "each of " + what);
      if (s != null) {
        T t = convert.apply(s);
        if (t != null) {
          out.add(t);
        }
      }
    }
    return out;
  }

  public static String describe(Node node) {
    if (node == null) {
      return "nothing";
    }
    if (node instanceof MappingNode) {
      return "a mapping";
    }
    if (node instanceof SequenceNode) {
      return "a list";
    }
    ScalarNode s = (ScalarNode) node;
    if (s.getTag().equals(Tag.NULL)) {
      return "an empty value";
    }
    return "'" + s.getValue() + "'";
  }

  /**
   * A mapping whose keys are taken one by one; {@link #finish()} then reports the keys nobody
   * asked for, with the keys that are allowed, so a typo never passes silently.
   */
  public final class MapView {
    private final String what;
    private final MappingNode node;
    private final Map<String, NodeTuple> entries = new LinkedHashMap<>();
    private final Map<String, Boolean> taken = new LinkedHashMap<>();

    private MapView(MappingNode node, String what) {
      this.node = node;
      this.what = what;
      for (NodeTuple t : node.getValue()) {
        if (!(t.getKeyNode() instanceof ScalarNode k)) {
          error(t.getKeyNode(), "keys in " + what + " must be plain words");
          continue;
        }
        NodeTuple prev = entries.putIfAbsent(k.getValue(), t);
        if (prev != null) {
          error(
              t.getKeyNode(),
              "duplicate key '" + k.getValue() + "' in " + what + " (first at line "
                  + at(prev.getKeyNode()).line() + ")");
        }
      }
    }

    public MappingNode node() {
      return node;
    }

    /** The value for {@code key}, or {@code null} when absent. Marks the key as known. */
    public Node get(String key) {
      taken.put(key, Boolean.TRUE);
      NodeTuple t = entries.get(key);
      return t == null ? null : t.getValueNode();
    }

    /** The key's own node (for line numbers), or the mapping's when absent. */
    public Node keyNode(String key) {
      NodeTuple t = entries.get(key);
      return t == null ? node : t.getKeyNode();
    }

    /** The value, or an error that it is missing. */
    public Node require(String key) {
      Node n = get(key);
      if (n == null) {
        error(node, what + " needs '" + key + ":'");
      }
      return n;
    }

    public boolean has(String key) {
      return entries.containsKey(key);
    }

    /** All entries in order, for maps whose keys are data (variables, resolver.hosts). */
    public List<NodeTuple> tuples() {
      return List.copyOf(entries.values());
    }

    /** Reports every key not asked for. */
    public void finish() {
      for (Map.Entry<String, NodeTuple> e : entries.entrySet()) {
        if (!taken.containsKey(e.getKey())) {
          error(
              e.getValue().getKeyNode(),
              "unknown key '" + e.getKey() + "' in " + what + "; known keys: "
                  + String.join(", ", taken.keySet()));
        }
      }
    }
  }
}
