package org.egressproxy.match;

import java.lang.reflect.Array;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * Host-name patterns compiled into a trie over reversed labels ({@code com} → {@code example} →
 * ...). A lookup walks the name's labels from the right, so its cost grows with the number of
 * labels in the name, not with the number of rules; a single-label wildcard adds one more branch
 * at its level. No regex, no scan of the rule list. Immutable once built, safe to share.
 *
 * @param <E> what a pattern maps to (the policy's rule)
 */
public final class NameTrie<E extends MatchEntry> {
  private final Node<E> root;
  private final int size;

  private NameTrie(Node<E> root, int size) {
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
  private static <E extends MatchEntry> E find(
      Node<E> node, String name, int end, int port, int protocol) {
    if (end < 0) {
      return node.exact == null ? null : MatchEntry.pick(node.exact, port, protocol);
    }
    E best = node.below == null ? null : MatchEntry.pick(node.below, port, protocol);
    int start = name.lastIndexOf('.', end - 1) + 1;
    Node<E> child = node.child(name, start, end);
    if (child != null) {
      best = MatchEntry.better(best, find(child, name, start - 1, port, protocol));
    }
    if (node.any != null) {
      best = MatchEntry.better(best, find(node.any, name, start - 1, port, protocol));
    }
    return best;
  }

  public static <E extends MatchEntry> Builder<E> builder(Class<E> type) {
    return new Builder<>(type);
  }

  /** Collects patterns; {@link #build()} freezes them into compact, hash-indexed nodes. */
  public static final class Builder<E extends MatchEntry> {
    private final Class<E> type;
    private final BuildNode<E> root = new BuildNode<>();
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

    public NameTrie<E> build() {
      return new NameTrie<>(freeze(root), size);
    }

    @SuppressWarnings("unchecked")
    private E[] array(List<E> list) {
      return list == null ? null : list.toArray((E[]) Array.newInstance(type, list.size()));
    }

    private Node<E> freeze(BuildNode<E> b) {
      Node<E> n = new Node<>();
      n.exact = array(b.exact);
      n.below = array(b.below);
      n.any = b.any == null ? null : freeze(b.any);
      if (b.children != null && !b.children.isEmpty()) {
        int cap = Integer.highestOneBit(Math.max(1, b.children.size() * 2 - 1)) << 1;
        n.keys = new String[cap];
        @SuppressWarnings("unchecked")
        Node<E>[] kids = (Node<E>[]) new Node<?>[cap];
        n.kids = kids;
        n.mask = cap - 1;
        for (Map.Entry<String, BuildNode<E>> e : b.children.entrySet()) {
          String key = e.getKey();
          int i = hash(key, 0, key.length()) & n.mask;
          while (n.keys[i] != null) {
            i = (i + 1) & n.mask;
          }
          n.keys[i] = key;
          n.kids[i] = freeze(e.getValue());
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

  /** A frozen node: children in an open-addressing table keyed by label, probed in place. */
  private static final class Node<E> {
    String[] keys;
    Node<E>[] kids;
    int mask;
    Node<E> any;
    E[] exact;
    E[] below;

    Node<E> child(String name, int start, int end) {
      if (keys == null) {
        return null;
      }
      int len = end - start;
      int i = hash(name, start, end) & mask;
      String k;
      while ((k = keys[i]) != null) {
        if (k.length() == len && name.regionMatches(start, k, 0, len)) {
          return kids[i];
        }
        i = (i + 1) & mask;
      }
      return null;
    }
  }

  /** Label hash over a region of the name: no substring allocated on lookup. */
  static int hash(String s, int start, int end) {
    int h = 0;
    for (int i = start; i < end; i++) {
      h = 31 * h + s.charAt(i);
    }
    return h ^ (h >>> 16);
  }
}
