// The official Phoenix JavaScript client (npm `phoenix`) against `zdps gateway`:
// node phoenix_client.js URL TOPIC [positions|plain] [TOKEN]. Joins TOPIC, pushes "publish" with
// ["event", {message: "from js"}], and prints one JSON line per thing that happens:
// {"joined": response}, {"published": response}, {"event": payload}, {"message": payload},
// {"heartbeat": status} for each heartbeat reply (every 0.5 s).
// With "positions" it joins with params {since: null}, and a push's line also has the
// ref its "on" callback got ({"event": payload, "ref": "EPOCH.SEQ"}).
// With TOKEN it connects with the authToken option.
// Reads "leave" on stdin to leave the channel ({"left": response}, then {"closed": true}).
const { Socket } = require("phoenix");
const WebSocket = require("ws");

const [url, topic, mode, authToken] = process.argv.slice(2);
const say = (what) => console.log(JSON.stringify(what));
const socket = new Socket(url, { transport: WebSocket, heartbeatIntervalMs: 500, authToken });
socket.onError(() => say({ socket_error: true }));
socket.onMessage(({ topic, payload }) => {
  if (topic === "phoenix") say({ heartbeat: payload.status });
});
socket.connect();
const channel = socket.channel(topic, mode === "positions" ? () => ({ since: null }) : {});
const heard = (name) => (payload, ref) =>
  say(mode === "positions" ? { [name]: payload, ref } : { [name]: payload });
channel.on("event", heard("event"));
channel.on("message", heard("message"));
channel.onClose(() => say({ closed: true }));
channel
  .join()
  .receive("ok", (response) => {
    say({ joined: response });
    channel
      .push("publish", ["event", { message: "from js" }])
      .receive("ok", (response) => say({ published: response }))
      .receive("error", (response) => say({ publish_error: response }));
  })
  .receive("error", (response) => say({ join_error: response }));
process.stdin.on("data", (data) => {
  if (data.toString().trim() === "leave") {
    channel.leave().receive("ok", (response) => say({ left: response }));
  }
});
