// The backend's URL of this environment (or preview) is built in by deployctl: frontend.api_url_env
// in deploy.yaml names this variable, and each deploy sets it to that environment's backend.
const API_URL = process.env.NEXT_PUBLIC_API_URL ?? "http://127.0.0.1:8000";

export default function Page() {
  return (
    <main>
      <h1>chat-web</h1>
      <p>
        Talking to the chat-api backend at <code>{API_URL}</code>.
      </p>
    </main>
  );
}
