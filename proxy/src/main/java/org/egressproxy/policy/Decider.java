package org.egressproxy.policy;

import com.github.benmanes.caffeine.cache.Cache;
import com.github.benmanes.caffeine.cache.Caffeine;

/**
 * Decides destinations through a bounded Caffeine cache in front of the current compiled
 * policies (the top-level one and one per source). A new set is installed atomically; a decision
 * cached under an older policy is never served (each decision carries its policy's generation,
 * checked on every hit), and the cache is emptied on install so the old decisions do not hold
 * memory. The cache key is the {@link Destination}, which includes the source's index.
 */
public final class Decider {
  private final Cache<Destination, Decision> cache;
  private final boolean caching;
  private volatile Sources sources;

  /**
   * @param maxEntries the cache bound ({@code cache.maxEntries}); 0 turns caching off
   */
  public Decider(Sources sources, int maxEntries) {
    this.sources = sources;
    this.caching = maxEntries > 0;
    this.cache = Caffeine.newBuilder().maximumSize(maxEntries).recordStats().build();
  }

  /** A decider for one policy and no {@code policy.sources}. */
  public Decider(CompiledPolicy policy, int maxEntries) {
    this(Sources.of(policy), maxEntries);
  }

  /** The decision of the top-level policy for {@code d}; allocation-free on a cache hit. */
  public Decision decide(Destination d) {
    return decide(sources.base(), d);
  }

  /**
   * The decision of {@code source}'s policy for {@code d}, which must have been made with the
   * source's index; allocation-free on a cache hit.
   */
  public Decision decide(Sources.Source source, Destination d) {
    return decide(source.policy(), d);
  }

  private Decision decide(CompiledPolicy p, Destination d) {
    if (!caching || !d.valid()) {
      return p.decide(d);
    }
    Decision cached = cache.getIfPresent(d);
    if (cached != null && cached.generation() == p.generation()) {
      return cached;
    }
    Decision fresh = p.decide(d);
    cache.put(d, fresh);
    return fresh;
  }

  /** Makes {@code next} the policies for every decision from now on. */
  public void install(Sources next) {
    sources = next;
    cache.invalidateAll();
  }

  /** Makes {@code next} the only policy (no {@code policy.sources}). */
  public void install(CompiledPolicy next) {
    install(Sources.of(next));
  }

  /** The top-level policy; its private-range exceptions hold for every source. */
  public CompiledPolicy policy() {
    return sources.base();
  }

  public Sources sources() {
    return sources;
  }

  /** The cache, for metrics ({@code cache="decisions"}) and tests. */
  public Cache<Destination, Decision> cache() {
    return cache;
  }
}
