using Broker.Durability;
using NUnit.Framework;

namespace Broker.Tests.Durability;

[TestFixture]
[Parallelizable(ParallelScope.Self)]
public sealed class InMemorySessionStoreTests : SessionStoreSpecification
{
    protected override Task<(ISessionStore Store, IUserRegistry Registry)> CreateAsync(TimeSpan ttl, TimeProvider clock)
    {
        var store = new InMemorySessionStore(new SessionStoreOptions { Ttl = ttl }, clock);
        return Task.FromResult<(ISessionStore, IUserRegistry)>((store, store));
    }
}
