package org.egressproxy.policy;

import static org.assertj.core.api.Assertions.assertThat;

import org.egressproxy.config.ConfigException;
import org.egressproxy.match.Protocol;
import org.junit.jupiter.api.Test;

class DeciderTest {
  private static final String ALLOW_X = "policy:\n  rules:\n    - allow: x.test\n";
  private static final String DENY_X =
      "policy:\n  rules:\n    - allow: \"*.test\"\n    - deny: x.test\n";

  @Test
  void cachesDecisionsAndCountsHitsAndMisses() throws ConfigException {
    Decider decider = new Decider(TestPolicies.fromYaml("a", ALLOW_X), 100);
    Destination d = Destination.of("x.test", 443, Protocol.TLS);
    Decision first = decider.decide(d);
    Decision second = decider.decide(Destination.of("X.TEST.", 443, Protocol.TLS));
    assertThat(first.allowed()).isTrue();
    assertThat(second).isSameAs(first);
    assertThat(decider.cache().stats().missCount()).isEqualTo(1);
    assertThat(decider.cache().stats().hitCount()).isEqualTo(1);
    // port and protocol are part of the key
    assertThat(decider.decide(Destination.of("x.test", 80, Protocol.HTTP)).allowed()).isFalse();
    assertThat(decider.cache().stats().missCount()).isEqualTo(2);
  }

  @Test
  void aNewPolicyNeverServesADecisionCachedUnderTheOldOne() throws ConfigException {
    CompiledPolicy old = TestPolicies.fromYaml("old", ALLOW_X);
    Decider decider = new Decider(old, 100);
    Destination d = Destination.of("x.test", 443, Protocol.TLS);
    Decision allowed = decider.decide(d);
    assertThat(allowed.allowed()).isTrue();

    CompiledPolicy next = TestPolicies.fromYaml("new", DENY_X);
    decider.install(next);
    // A decision made under the old policy lands in the cache after the swap (a racing thread):
    decider.cache().put(d, allowed);
    Decision now = decider.decide(d);
    assertThat(now.allowed()).isFalse();
    assertThat(now.reason()).isEqualTo(Reason.DENY_RULE);
    assertThat(now.generation()).isEqualTo(next.generation()).isNotEqualTo(old.generation());
    assertThat(decider.decide(d)).isSameAs(now);
  }

  @Test
  void eachSourceHasItsOwnCachedDecisions() throws ConfigException {
    Sources sources = TestPolicies.sourcesFromYaml("s", """
        policy:
          rules: [{allow: common.test}]
          sources:
            - name: a
              clients: [10.0.0.0/8]
              rules: [{allow: x.test}]
            - name: b
              clients: [192.168.0.0/16]
        """);
    Decider decider = new Decider(sources, 100);
    Sources.Source a = sources.find("a");
    Sources.Source b = sources.find("b");
    for (int round = 0; round < 3; round++) { // alternating: each source hits its own entry
      assertThat(decider.decide(a, Destination.of("x.test", 443, Protocol.TLS, a.index()))
          .allowed()).isTrue();
      assertThat(decider.decide(b, Destination.of("x.test", 443, Protocol.TLS, b.index()))
          .allowed()).isFalse();
      assertThat(decider.decide(b, Destination.of("common.test", 443, Protocol.TLS,
          b.index())).allowed()).isTrue();
    }
    assertThat(decider.cache().stats().missCount()).isEqualTo(3);
    assertThat(decider.cache().stats().hitCount()).isEqualTo(6);
    assertThat(decider.decide(Destination.of("x.test", 443, Protocol.TLS)).allowed())
        .as("the top-level policy").isFalse();
  }

  @Test
  void sourcesAreTriedInOrderByAddressAndCredential() throws ConfigException {
    Sources sources = TestPolicies.sourcesFromYaml("s", """
        policy:
          sources:
            - name: ci
              clients: [10.1.0.0/16]
              tokens: [{name: t, sha256: "%s"}]
            - name: nodes
              clients: [10.0.0.0/8]
        """.formatted("0".repeat(64)));
    var token = new org.egressproxy.auth.Credential(
        org.egressproxy.auth.Credential.Kind.TOKEN, "t");
    var none = org.egressproxy.auth.Credential.NONE;
    var bad = org.egressproxy.auth.Credential.INVALID;
    var ip = (java.util.function.Function<String, org.egressproxy.match.IpLiteral>)
        org.egressproxy.match.IpLiteral::parse;
    assertThat(sources.identify(ip.apply("10.1.2.3"), token, true).source().name())
        .isEqualTo("ci");
    assertThat(sources.identify(ip.apply("10.1.2.3"), none, true).source().name())
        .as("falls through to the next source that needs no credential").isEqualTo("nodes");
    assertThat(sources.identify(ip.apply("10.1.2.3"), bad, true).source().name())
        .isEqualTo("nodes");
    Sources.Identity outside = sources.identify(ip.apply("192.0.2.1"), token, true);
    assertThat(outside.source()).isNull();
    assertThat(outside.refusal()).isEqualTo(Sources.NO_SOURCE);
    assertThat(outside.challenge()).isFalse();
    assertThat(sources.identify(ip.apply("10.1.2.3"), token, false).source().name())
        .isEqualTo("ci");
    assertThat(sources.identify(null, none, true).refusal()).isEqualTo(Sources.NO_SOURCE);
  }

  @Test
  void theCacheIsBounded() throws ConfigException {
    Decider decider = new Decider(TestPolicies.fromYaml("a", ALLOW_X), 50);
    for (int i = 0; i < 5_000; i++) {
      decider.decide(Destination.of("h" + i + ".test", 443, Protocol.TLS));
    }
    decider.cache().cleanUp();
    assertThat(decider.cache().estimatedSize()).isLessThanOrEqualTo(50);
  }

  @Test
  void invalidHostsAreNotCachedAndZeroTurnsCachingOff() throws ConfigException {
    Decider decider = new Decider(TestPolicies.fromYaml("a", ALLOW_X), 100);
    assertThat(decider.decide(Destination.of("a b", 443, Protocol.TLS)).reason())
        .isEqualTo(Reason.INVALID_HOST);
    assertThat(decider.cache().estimatedSize()).isZero();

    Decider off = new Decider(TestPolicies.fromYaml("a", ALLOW_X), 0);
    assertThat(off.decide(Destination.of("x.test", 443, Protocol.TLS)).allowed()).isTrue();
    assertThat(off.cache().stats().requestCount()).isZero();
  }

  @Test
  void reportModeForwardsPolicyDenialsButNotPrivateDestinations() throws ConfigException {
    CompiledPolicy p = TestPolicies.fromYaml("r",
        "policy:\n  mode: report\n  rules:\n    - allow: ok.test\n"
            + "  allowDestinationCidrs: [10.9.0.0/16]\n");
    Decision denied = p.decide(Destination.of("nope.test", 443, Protocol.TLS));
    assertThat(denied.allowed()).isFalse();
    assertThat(denied.enforced()).isFalse();
    assertThat(denied.forward()).isTrue();
    Decision priv = p.decide(Destination.of("10.1.2.3", 443, Protocol.TLS));
    assertThat(priv.reason()).isEqualTo(Reason.PRIVATE_DESTINATION);
    assertThat(priv.forward()).isFalse();
    // resolved addresses: the data plane asks the same question
    assertThat(p.refuses(org.egressproxy.match.IpLiteral.parse("169.254.169.254"))).isTrue();
    assertThat(p.refuses(org.egressproxy.match.IpLiteral.parse("10.9.1.1"))).isFalse();
    assertThat(p.refuses(org.egressproxy.match.IpLiteral.parse("::ffff:10.9.1.1"))).isFalse();
    assertThat(p.refuses(org.egressproxy.match.IpLiteral.parse("20.1.2.3"))).isFalse();
  }
}
