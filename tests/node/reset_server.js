// The reference Socket.IO v4 server playing RESET, as RESET's own samples
// assume: namespace /v2, `auth`, then `ack` for every monitors/readings
// message. Prints `listening PORT`, then each received message as a JSON line.
const { createServer } = require("http");
const { Server } = require("socket.io");

const [clientId, clientSecret] = [process.env.RESET_CLIENT_ID || "demo", process.env.RESET_CLIENT_SECRET || "demo"];
const http = createServer();
const io = new Server(http);

io.of("/v2").on("connection", (socket) => {
  let authenticated = false;
  socket.on("auth", (data) => {
    authenticated = data && data.client_id === clientId && data.client_secret === clientSecret;
    socket.emit("auth", authenticated
      ? { code: "10200", message: "Authentication succeeded.", api_version: "v2" }
      : { code: "10401", message: "Authentication failed.", api_version: "v2" });
  });
  for (const event of ["monitors", "readings"]) {
    socket.on(event, (data) => {
      if (!authenticated) {
        socket.emit("errors", { code: "10401", message: "Unauthorized", id: data && data.message_id });
        return;
      }
      console.log(JSON.stringify({ event, payload: data }));
      socket.emit("ack", { code: "10200", ack: true, id: data.message_id });
    });
  }
});

http.listen(Number(process.argv[2] || 0), "127.0.0.1", () => {
  console.log(`listening ${http.address().port}`);
});
