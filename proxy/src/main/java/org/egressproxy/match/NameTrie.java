package org.egressproxy.match;

import java.lang.reflect.Array;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Host-name patterns compiled into a trie over reversed labels ({@code com} → {@code example} →
 * ...). A lookup walks the name's labels from the right, so its cost grows with the number of
 * labels in the name, not with the number of rules; a single-label wildcard adds one more branch
 * at its level. No regex, no scan of the rule list, no allocation. Immutable once built.
 *
 * <p>Layout, chosen for memory locality at a million rules (each step down the trie should cost
 * as few cache misses as possible): a node is one {@code Object[]}: {@code [ANY]} the
 * single-label-wildcard child, {@code [EXACT]} the entries for patterns ending here, {@code
 * [BELOW]} the entries for {@code *.}-patterns ending here, then an open-addressing table of
 * (label bytes, child) pairs. A child is a node, or - for the most common node by far, a leaf
 * with exactly one exact entry - the entry itself.
 *
 * @param <E> what a pattern maps to (the policy's rule)
 */
public final class NameTrie<E extends MatchEntry> {
  private static final int ANY = 0;
  private static final int EXACT = 1;
  private static final int BELOW = 2;
  private static final int HEADER = 3;

  private final Object[] root;
  private final int size;

  private NameTrie(Object[] root, int size) {
    this.root = root;
    this.size = size;
  }

  /** Number of patterns added. */
  public int size() {
    return size;
  }

  /**
   * The entry that decides for {@code name} (canonical, see {@link HostName}), {@code port} and
   * {@code protocol}: a matching deny if there is one, else the most specific matching allow,
   * else {@code null}.
   */
  public E find(String name, int port, int protocol) {
    return find(root, name, name.length(), port, protocol);
  }

  /**
   * {@code end} is the exclusive end of the part of {@code name} not yet consumed; the labels
   * after it led to {@code node}. -1 means everything is consumed.
   */
  @SuppressWarnings("unchecked")
  private static <E extends MatchEntry> E find(
      Object[] node, String name, int end, int port, int protocol) {
    if (end < 0) {
      Object exact = node[EXACT];
      return exact == null ? null : MatchEntry.pick((E[]) exact, port, protocol);
    }
    Object below = node[BELOW];
    E best = below == null ? null : MatchEntry.pick((E[]) below, port, protocol);
    // One backward pass finds the label's start and hashes it.
    int h = 0;
    int i = end - 1;
    for (char c; i >= 0 && (c = name.charAt(i)) != '.'; i--) {
      h = 31 * h + c;
    }
    int start = i + 1;
    // Deeper matches are more specific than this node's 'below'; between a one-label wildcard
    // and the literal label, the literal is more specific: it goes last, so it wins ties.
    Object any = node[ANY];
    if (any != null) {
      best = MatchEntry.better(best, find((Object[]) any, name, start - 1, port, protocol));
    }
    Object child = child(node, mix(h), name, start, end);
    if (child instanceof Object[]) {
      best = MatchEntry.better(best, find((Object[]) child, name, start - 1, port, protocol));
    } else if (child != null && start == 0) {
      // A leaf stored inline holds one exact entry: it matches only when this label was the
      // name's first.
      E leaf = (E) child;
      if (leaf.accepts(port, protocol)) {
        best = MatchEntry.better(best, leaf);
      }
    }
    return best;
  }

  /** The child for the label {@code name[start, end)}, or {@code null}. */
  private static Object child(Object[] node, int hash, String name, int start, int end) {
    int cap = (node.length - HEADER) >>> 1;
    if (cap == 0) {
      return null;
    }
    int mask = cap - 1;
    int len = end - start;
    int i = hash & mask;
    Object k;
    while ((k = node[HEADER + 2 * i]) != null) {
      byte[] key = (byte[]) k;
      if (key.length == len && sameLabel(key, name, start)) {
        return node[HEADER + 2 * i + 1];
      }
      i = (i + 1) & mask;
    }
    return null;
  }

  private static boolean sameLabel(byte[] key, String name, int start) {
    for (int j = 0; j < key.length; j++) {
      if (key[j] != (byte) name.charAt(start + j)) {
        return false;
      }
    }
    return true;
  }

  /** A label's hash, over its characters from last to first (as the lookup scans). */
  static int hash(String label) {
    int h = 0;
    for (int i = label.length() - 1; i >= 0; i--) {
      h = 31 * h + label.charAt(i);
    }
    return mix(h);
  }

  private static int mix(int h) {
    return h ^ (h >>> 16);
  }

  public static <E extends MatchEntry> Builder<E> builder(Class<E> type) {
    return new Builder<>(type);
  }

  /** Collects patterns; {@link #build()} freezes them into the compact layout. */
  public static final class Builder<E extends MatchEntry> {
    private final Class<E> type;
    private final BuildNode<E> root = new BuildNode<>();
    private final Map<String, byte[]> sharedLabels = new HashMap<>();
    private int size;

    private Builder(Class<E> type) {
      this.type = type;
    }

    public Builder<E> add(NamePattern pattern, E entry) {
      BuildNode<E> node = root;
      for (String label : pattern.reversedLabels()) {
        if (label == NamePattern.ANY_LABEL) {
          if (node.any == null) {
            node.any = new BuildNode<>();
          }
          node = node.any;
        } else {
          if (node.children == null) {
            node.children = new HashMap<>(4);
          }
          node = node.children.computeIfAbsent(label, k -> new BuildNode<>());
        }
      }
      if (pattern.leadingWildcard()) {
        node.below = add(node.below, entry);
      } else {
        node.exact = add(node.exact, entry);
      }
      size++;
      return this;
    }

    private static <E> List<E> add(List<E> list, E entry) {
      List<E> l = list == null ? new ArrayList<>(1) : list;
      l.add(entry);
      return l;
    }

    /** The trie; the builder must not be used afterwards. */
    public NameTrie<E> build() {
      NameTrie<E> trie = new NameTrie<>(freeze(root), size);
      sharedLabels.clear();
      return trie;
    }

    @SuppressWarnings("unchecked")
    private E[] array(List<E> list) {
      return list == null ? null : list.toArray((E[]) Array.newInstance(type, list.size()));
    }

    private Object[] freeze(BuildNode<E> b) {
      int count = b.children == null ? 0 : b.children.size();
      // Load factor at most 3/4: small tables keep a node within one or two cache lines.
      int cap = count == 0 ? 0 : Math.max(2, Integer.highestOneBit((count * 4 + 2) / 3 - 1) << 1);
      Object[] n = new Object[HEADER + 2 * cap];
      n[ANY] = b.any == null ? null : freeze(b.any);
      n[EXACT] = array(b.exact);
      n[BELOW] = array(b.below);
      if (count > 0) {
        int mask = cap - 1;
        for (Map.Entry<String, BuildNode<E>> e : b.children.entrySet()) {
          String label = e.getKey();
          int i = hash(label) & mask;
          while (n[HEADER + 2 * i] != null) {
            i = (i + 1) & mask;
          }
          BuildNode<E> kid = e.getValue();
          boolean leaf = kid.children == null && kid.any == null && kid.below == null
              && kid.exact != null && kid.exact.size() == 1;
          // Labels of inner nodes recur under many parents (team1 under every region): one
          // shared copy stays in the CPU cache. A leaf's label is usually unique: not shared.
          n[HEADER + 2 * i] = leaf
              ? label.getBytes(StandardCharsets.ISO_8859_1) // canonical names are ASCII
              : sharedLabels.computeIfAbsent(label, l -> l.getBytes(StandardCharsets.ISO_8859_1));
          n[HEADER + 2 * i + 1] = leaf ? kid.exact.get(0) : freeze(kid);
        }
        b.children = null; // let the builder's maps go while the rest is frozen
      }
      return n;
    }
  }

  private static final class BuildNode<E> {
    Map<String, BuildNode<E>> children;
    BuildNode<E> any;
    List<E> exact;
    List<E> below;
  }
}
