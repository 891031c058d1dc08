package org.egressproxy.match;

import static org.assertj.core.api.Assertions.assertThat;

import java.util.ArrayList;
import java.util.List;
import net.jqwik.api.Arbitraries;
import net.jqwik.api.Arbitrary;
import net.jqwik.api.Combinators;
import net.jqwik.api.ForAll;
import net.jqwik.api.Property;
import net.jqwik.api.Provide;

/**
 * The trie against a reference matcher written as plainly as possible: on random rule sets and
 * names, both must agree on whether anything matches, whether a deny decides, and the trie's
 * answer must be one of the rules the reference finds.
 */
class NameTrieProperties {
  private static final List<String> LABELS = List.of("a", "b", "c", "api", "xn--d", "1", "a-b");

  record R(String pattern, boolean deny, int port, int protocols, int id) implements MatchEntry {
    @Override
    public boolean isDeny() {
      return deny;
    }

    @Override
    public boolean accepts(int p, int protocol) {
      return p == port && (protocols & protocol) != 0;
    }
  }

  record Query(String name, int port, int protocol) {}

  /** The reference: match one pattern against one name, label by label. */
  static boolean referenceMatches(String pattern, String name) {
    String[] p = pattern.split("\\.");
    String[] n = name.split("\\.");
    boolean leading = p[0].equals("*");
    int fixed = leading ? p.length - 1 : p.length;
    if (leading ? n.length <= fixed : n.length != fixed) {
      return false;
    }
    for (int i = 1; i <= fixed; i++) {
      String pl = p[p.length - i];
      String nl = n[n.length - i];
      if (!pl.equals("*") && !pl.equals(nl)) {
        return false;
      }
    }
    return true;
  }

  @Provide
  Arbitrary<String> label() {
    return Arbitraries.of(LABELS);
  }

  @Provide
  Arbitrary<String> pattern() {
    Arbitrary<List<String>> labels = Arbitraries.oneOf(label(), label(), label(), Arbitraries.just("*"))
        .list().ofMinSize(1).ofMaxSize(4);
    return Combinators.combine(Arbitraries.of(true, false), labels).as((lead, ls) -> {
      List<String> all = new ArrayList<>();
      if (lead) {
        all.add("*");
      }
      all.addAll(ls);
      if (all.stream().allMatch("*"::equals)) {
        all.add("a");
      }
      if (all.get(all.size() - 1).equals("1")) {
        all.set(all.size() - 1, "b"); // a name's last label is never all digits
      }
      return String.join(".", all);
    });
  }

  @Provide
  Arbitrary<List<R>> rules() {
    Arbitrary<R> rule = Combinators.combine(
            pattern(),
            Arbitraries.of(true, false, false),
            Arbitraries.of(80, 443),
            Arbitraries.of(1, 2, 3))
        .as((p, deny, port, proto) -> new R(p, deny, port, proto, 0));
    return rule.list().ofMinSize(0).ofMaxSize(25).map(list -> {
      List<R> numbered = new ArrayList<>();
      for (int i = 0; i < list.size(); i++) {
        R r = list.get(i);
        numbered.add(new R(r.pattern(), r.deny(), r.port(), r.protocols(), i));
      }
      return numbered;
    });
  }

  @Provide
  Arbitrary<List<Query>> queries() {
    Arbitrary<String> name = label().list().ofMinSize(1).ofMaxSize(6).map(ls -> {
      List<String> l = new ArrayList<>(ls);
      if (l.get(l.size() - 1).equals("1")) {
        l.set(l.size() - 1, "c");
      }
      return String.join(".", l);
    });
    return Combinators.combine(name, Arbitraries.of(80, 443), Arbitraries.of(1, 2))
        .as(Query::new).list().ofMinSize(1).ofMaxSize(20);
  }

  @Property(tries = 2000)
  void trieAgreesWithReference(@ForAll("rules") List<R> rules, @ForAll("queries") List<Query> queries)
      throws PatternException {
    NameTrie.Builder<R> b = NameTrie.builder(R.class);
    for (R r : rules) {
      b.add(NamePattern.parse(r.pattern()), r);
    }
    NameTrie<R> trie = b.build();
    // Ask also for names built from the rules themselves, so that matches are common.
    List<Query> all = new ArrayList<>(queries);
    for (R r : rules) {
      String concrete = r.pattern().replace("*", "api");
      all.add(new Query(concrete, r.port(), r.protocols() == 2 ? 2 : 1));
      all.add(new Query("c." + concrete, r.port(), 1));
    }
    for (Query q : all) {
      List<R> matching = rules.stream()
          .filter(r -> r.accepts(q.port(), q.protocol()) && referenceMatches(r.pattern(), q.name()))
          .toList();
      boolean anyDeny = matching.stream().anyMatch(R::deny);
      R got = trie.find(q.name(), q.port(), q.protocol());
      if (matching.isEmpty()) {
        assertThat(got).as("%s on %s", q, rules).isNull();
      } else {
        assertThat(got).as("%s on %s", q, rules).isNotNull();
        assertThat(got.deny()).as("deny decides for %s on %s", q, rules).isEqualTo(anyDeny);
        assertThat(matching).as("%s on %s", q, rules).contains(got);
      }
    }
  }
}
