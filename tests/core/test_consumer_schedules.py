"""Seeded fault schedules with a durable consumer on three simulated nodes.

Each schedule publishes at ``replicated`` level, lets members join, leave and ack what
they hold, and crashes the topic's owner (and restarts it), crashes a member's node, or
cuts the network (and heals it). Then every node comes back, the network heals, and
members ack all they get until the consumer is drained. The guarantee of
docs/FAILURES.md "Durable consumers", checked:

* no replicated-acked message is lost: a member acked each of them at last;
* each is acked once at the consumer: nothing pending there, its cursor at the newest
  message (``lost`` may count what was not replicated and died with its owner);
* redeliveries are flagged: every delivery of a message after its first has
  deliveries > 1, whichever owner made it; nothing goes to a member that left.
"""

from __future__ import annotations

import random

import pytest

from tests.core.consumer_world import NODES, Push, Said, World, flag_check, topic_owned_by
from tests.core.node_net import CLIENT, mesh
from zdps.core.ring import HashRing
from zdps.core.tunables import CoreConfig
from zdps.wire import LEVEL_REPLICATED
from zdps.wire.consumers import ACK

pytestmark = pytest.mark.timeout(120)

ACK_WAIT = 2.0
FAULTS = ("crash_owner", "crash_member_node", "isolate", "cut")
# Seeds 0-39, and those of 40-299 that once failed, each for a bug one of the tests at
# the end shows alone; all 300 pass (a scan: the test body over range(300)).
SEEDS = [*range(40), 82, 86, 137, 176, 178, 200]


class Schedule:
    """A random schedule of work and faults, from one seed; keeps at most one node down
    or cut off at a time, so that ``replicated`` publishes can go on."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        net = mesh(NODES, CoreConfig(history=1000))
        net.record = False
        net.latency = self.rng.choice([0.0, 0.0005, 0.002])
        owner = self.rng.choice(NODES)
        self.world = World(net, topic_owned_by(owner), dead_at=self.rng.choice(NODES))
        self.world.create(
            self.rng.choice(NODES),
            start="all",
            ack_wait=ACK_WAIT,
            max_deliver=1000,
            max_pending=self.rng.choice([3, 10, 100]),
        )
        self.down: set[str] = set()
        self.cut = False
        self.calm_until = 0.0  # a node restarted: no fault before it has its state back
        self.log: list[str] = []

    def run(self, steps: int) -> None:
        rng, world = self.rng, self.world
        faults = [rng.choice(FAULTS) for _ in range(2)]  # every schedule has faults
        fault_at = sorted(rng.sample(range(steps), len(faults)))
        for step in range(steps):
            due = bool(fault_at) and step >= fault_at[0]
            if due and (self.down or self.cut):
                self.repair()  # one fault at a time
            elif due and world.net.clock >= self.calm_until:
                fault_at.pop(0)
                self.fault(faults.pop(0))
            else:
                self.work()
            world.advance(rng.choice([0.05, 0.2, 0.5, 1.0, 2.5]), quiet_instants=False)

    def work(self) -> None:
        rng, world = self.rng, self.world
        up = [n for n in NODES if n not in self.down]
        what = rng.choices(["publish", "consume", "leave", "ack", "repair"], [5, 2, 1, 4, 2])[0]
        self.log.append(what)
        if what == "publish":
            for _ in range(rng.randint(1, 3)):
                world.publish(rng.choice(up), LEVEL_REPLICATED)
        elif what == "consume" or (what == "leave" and not world.members):
            world.consume(rng.choice(up))
        elif what == "leave":
            world.leave(rng.choice(sorted(world.members)))
        elif what == "ack":
            for member in sorted(world.members):
                for payload in list(world.held[member]):
                    if rng.random() < 0.7:
                        world.say(member, payload, ACK)
        else:
            self.repair()

    def fault(self, kind: str) -> None:
        world, net = self.world, self.world.net
        owner = net.owner(world.topic)
        assert owner is not None
        self.log.append(f"{kind} (owner {owner})")
        if kind == "crash_owner":
            self.crash(owner)
        elif kind == "crash_member_node" and world.members:
            self.crash(world.members[self.rng.choice(sorted(world.members))])
        elif kind == "isolate":
            net.isolate(self.rng.choice(NODES))
            self.cut = True
        elif kind == "cut":
            net.cut(*self.rng.sample(NODES, 2))
            self.cut = True

    def crash(self, node: str) -> None:
        self.world.net.crash(node)
        self.world.node_down(node)
        self.down.add(node)

    def repair(self) -> None:
        """Restart the node that is down, heal the network."""
        net = self.world.net
        for node in sorted(self.down):
            self.log.append(f"restart {node}")
            net.restart(node, [n for n in NODES if n not in self.down])
            self.calm_until = net.clock + 5.0  # two faults at once may lose the state
        self.down.clear()
        if self.cut:
            self.log.append("heal")
            net.heal()
            self.cut = False

    def finish(self) -> dict:
        """Everything back, then members ack all until the consumer is drained."""
        self.repair()
        world = self.world
        world.net.settle(timeout=30.0)
        world.advance(5.0, quiet_instants=False)
        if not world.members:
            world.consume(self.rng.choice(NODES))
        return world.drain(rounds=30, wait=ACK_WAIT)


@pytest.mark.parametrize("seed", SEEDS)
def test_fault_schedules_lose_no_replicated_message_and_flag_every_redelivery(seed: int) -> None:
    schedule = Schedule(seed)
    schedule.run(steps=schedule.rng.randint(10, 30))
    info = schedule.finish()
    world = schedule.world
    why = f"seed {seed}: {schedule.log}"
    pushes = flag_check(world.trace)
    acked = {e.payload for e in world.trace if isinstance(e, Said) and e.how == ACK}
    replicated = {
        payload
        for payload, (node, ref) in world.published.items()
        if ref in world.net.acks(node, CLIENT)
    }
    assert replicated - acked == set(), why
    assert replicated - set(pushes) == set(), why
    assert info["pending"] == 0, (info, why)  # and its cursor at the newest (drain)


# ---------------------------------------------------------------- what the schedules found


def three(owner: str) -> World:
    """Three settled nodes, a consumer of a topic ``owner`` owns, one member at the node
    after it, and three replicated messages that member got and did not ack."""
    net = mesh(NODES, CoreConfig(history=1000))
    net.record = False
    world = World(net, topic_owned_by(owner), dead_at=owner)
    world.create(owner, start="all", ack_wait=ACK_WAIT, max_deliver=1000)
    world.consume(NODES[(NODES.index(owner) + 1) % 3])
    for _ in range(3):
        world.publish(owner, LEVEL_REPLICATED)
    world.advance(0.5)  # a timer tick: the state went to the replica
    return world


def test_an_owner_restarted_before_anyone_noticed_keeps_its_consumer() -> None:
    """Seeds 15, 16, 17, 20, 29, 32 (41 of seeds 0-299): the owner restarts faster than
    the failure detector sees it die. Its peers see a new incarnation (down and up at
    once), the ring does not move, and the replica holding the consumer's state never
    hands it to the restarted owner, which has none: the consumer is gone
    (consumer_info: no_consumer), and so is every message it had not had acked."""
    world = three("a")
    world.net.crash("a")
    world.advance(0.5)
    world.net.restart("a", ["b"])
    world.net.settle()
    world.advance(5.0)
    info = world.drain(rounds=10, wait=ACK_WAIT)
    assert info["pending"] == 0
    flag_check(world.trace)
    assert {e.payload for e in world.trace if isinstance(e, Said)} == set(world.published)


def test_after_a_healed_split_what_the_other_side_delivered_goes_again_flagged() -> None:
    """Seed 137: the replica, cut off alone, continues the consumer from the state it
    holds and delivers (flagged) to its member what the owner had not handed out yet
    (no member on the owner's side). After the heal the owner keeps its own state, and
    drops the replica's sent to it ("running here already"); its history merged
    nothing new, so nothing raises its suspect bound, and it hands out the same messages
    to that member as first deliveries: unflagged duplicates."""
    world = alone_with_a_member("c")
    world.net.heal()
    world.net.settle(timeout=30.0)
    world.advance(5.0)
    world.drain(rounds=10, wait=ACK_WAIT)
    flag_check(world.trace)


def test_what_the_other_side_sequenced_during_a_split_is_not_skipped() -> None:
    """Seeds 82, 176, 178: a cut between the owner and its replica (the third node sees
    both) makes both run the consumer, each sequencing in an epoch of its own. The owner
    dies as the cut heals; the replica's consumer has its cursor in its newer epoch, and
    what the owner sequenced meanwhile at ``replicated`` level (its copies on the third
    node) comes into history behind that cursor: no consumer ever hands it out.
    Acknowledged, and lost."""
    world = three("a")
    world.ack_all()
    replica = HashRing(NODES).successors(world.topic, 2)[1]
    world.net.cut("a", replica)
    world.advance(5.0)
    for at in ("a", replica):
        world.publish(at, LEVEL_REPLICATED)
        world.advance(0.5)
    world.net.heal()
    world.net.crash("a")
    world.node_down("a")
    world.advance(10.0)
    world.net.restart("a", [replica])
    world.net.settle(timeout=30.0)
    world.advance(5.0)
    world.drain(rounds=10, wait=ACK_WAIT)
    replicated = {p for p, (node, ref) in world.published.items() if ref in world.net.acks(node)}
    assert len(replicated) == 5
    assert replicated <= {e.payload for e in world.trace if isinstance(e, Said)}


def alone_with_a_member(owner: str) -> World:
    """A consumer of a topic ``owner`` owns, two replicated messages nobody got yet, and
    the replica cut off alone, with a member the owner never hears of: the replica owns
    the topic on its side and runs the consumer from the state it holds."""
    net = mesh(NODES, CoreConfig(history=1000))
    net.record = False
    world = World(net, topic_owned_by(owner), dead_at=owner)
    world.create(owner, start="all", ack_wait=ACK_WAIT, max_deliver=1000)
    replica = HashRing(NODES).successors(world.topic, 2)[1]
    for _ in range(2):
        world.publish(owner, LEVEL_REPLICATED)
    world.advance(0.5)
    net.isolate(replica)
    world.consume(replica)
    world.advance(5.0)
    assert {p.node for p in world.trace if isinstance(p, Push)} == {replica}
    return world


def test_a_replica_cut_off_alone_and_the_owner_do_not_both_deliver_unflagged() -> None:
    """Seeds 86 and 200: as above, but the owner's side gets a member during the split.
    The owner never hears of the replica's member nor of its deliveries; it delivered
    the same messages as first deliveries there. Now a replica leaving the ring makes
    the owner flag what its history held then (consumer_succession.py)."""
    world = alone_with_a_member("c")
    replica = next(p.node for p in world.trace if isinstance(p, Push))
    world.consume(next(n for n in NODES if n not in ("c", replica)))
    world.advance(5.0)
    flag_check(world.trace)
